"""Floe: marketing automation flows on Step Functions, SQS, DynamoDB, SES and SNS."""
