"""Step Functions: publishing state machines, starting and stopping executions, answering tasks."""
