"""The one structured logger of the app (Powertools), so every module logs with the same keys."""

from aws_lambda_powertools import Logger

logger = Logger(service="floe")
