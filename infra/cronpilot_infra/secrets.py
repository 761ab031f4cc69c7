"""Secrets: the Anthropic API key, LLM access for the planner and summarizer, and the job secrets
the executor may read (header values that job files reference by name)."""

from __future__ import annotations

from aws_cdk import Aws, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from .settings import DeploySettings


class CronpilotSecrets(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, settings: DeploySettings) -> None:
        super().__init__(scope, construct_id)
        self.settings = settings
        self.anthropic_key: secretsmanager.Secret | None = None
        if settings.llm_provider == "anthropic":
            # Created empty (a placeholder value); the operator puts the key in after the first deploy.
            # Until then the planner and summarizer take the deterministic path.
            self.anthropic_key = secretsmanager.Secret(
                self,
                "AnthropicApiKey",
                secret_name=settings.anthropic_secret_name,
                description="Anthropic API key for cronpilot's planner and summarizer (put-secret-value)",
                removal_policy=RemovalPolicy.DESTROY,
            )

    @property
    def environment(self) -> dict[str, str]:
        if self.anthropic_key is None:
            return {}
        return {"ANTHROPIC_SECRET_ARN": self.anthropic_key.secret_arn}

    def grant_llm(self, grantee: iam.IGrantable) -> None:
        """Read the API key (anthropic) or invoke exactly the configured model (bedrock)."""
        if self.anthropic_key is not None:
            iam.Grant.add_to_principal(
                grantee=grantee,
                actions=["secretsmanager:GetSecretValue"],
                resource_arns=[self.anthropic_key.secret_arn],
            )
        elif self.settings.llm_provider == "bedrock":
            iam.Grant.add_to_principal(
                grantee=grantee,
                actions=["bedrock:InvokeModel"],
                resource_arns=bedrock_model_arns(self.settings.model),
            )

    def grant_job_secrets(self, grantee: iam.IGrantable, *, parameters: bool = True) -> None:
        """Secrets Manager secrets (and, with `parameters`, SSM parameters) under the job secret prefix,
        nothing else."""
        prefix = self.settings.secret_prefix
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["secretsmanager:GetSecretValue"],
            resource_arns=[
                f"arn:{Aws.PARTITION}:secretsmanager:{Aws.REGION}:{Aws.ACCOUNT_ID}:secret:{prefix}*"
            ],
        )
        if parameters:
            iam.Grant.add_to_principal(
                grantee=grantee,
                actions=["ssm:GetParameter"],
                resource_arns=[f"arn:{Aws.PARTITION}:ssm:{Aws.REGION}:{Aws.ACCOUNT_ID}:parameter/{prefix}*"],
            )


# Cross-region inference profiles are named "<geo>.<model id>"; newer Claude models are offered only so.
_GEOS = ("us.", "eu.", "apac.", "global.", "jp.", "au.", "ca.", "us-gov.")


def bedrock_model_arns(model: str) -> list[str]:
    """A foundation model's ARN; for an inference profile, the profile plus the model it routes to
    in whichever region the profile picks (which is why that one ARN names any region)."""
    base = f"arn:{Aws.PARTITION}:bedrock"
    geo = inference_profile_geo(model)
    if geo is None:
        return [f"{base}:{Aws.REGION}::foundation-model/{model}"]
    return [
        f"{base}:{Aws.REGION}:{Aws.ACCOUNT_ID}:inference-profile/{model}",
        f"{base}:*::foundation-model/{model.removeprefix(geo)}",
    ]


def inference_profile_geo(model: str) -> str | None:
    """The "<geo>." prefix of a cross-region inference profile id, None for a plain model id."""
    return next((g for g in _GEOS if model.startswith(g)), None)
