"""SageMaker, CloudWatch and Application Auto Scaling: the calls a plan makes, dry-run or executed, and what runs now."""
