"""cronpilot's CDK app. Settings come from CDK context (cdk.json, `-c key=value`); see docs/deploy.md."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from aws_cdk import App, Environment, Validations
from cdk_nag import AwsSolutionsChecks
from cronpilot_infra.paths import DEFAULT_LAYERS_DIR
from cronpilot_infra.settings import DeploySettings, SettingsError
from cronpilot_infra.stack import CronpilotStack


def build_app(app: App | None = None) -> App:
    app = app or App()
    settings = DeploySettings.from_context(app.node.try_get_context)
    # Where `make build` put the layers; tests and CI builds may point elsewhere.
    layers_dir = app.node.try_get_context("layers_dir") or DEFAULT_LAYERS_DIR
    CronpilotStack(
        app,
        settings.prefix,
        settings=settings,
        layers_dir=Path(layers_dir),
        env=Environment(
            account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")
        ),
    )
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app


def main() -> int:
    """Bad settings and missing layers are one line naming what to fix, not a traceback."""
    try:
        build_app().synth()
    except SettingsError as exc:
        print(f"cronpilot: CDK context: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"cronpilot: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
