"""cronpilot's CDK app: one stack that only composes, one construct per capability."""
