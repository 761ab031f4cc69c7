"""The garbage collector's policy while a function's modules load (its Lambda init).

Init builds only long-lived objects (modules, classes, clients, validators), so no collection during
it can free anything, yet each one walks the ~100,000 objects already loaded: about 8% of the init's
CPU with boto3, Powertools and pydantic. So a handler pauses collection before its first import and,
once loaded on Lambda, moves everything init built to the permanent generation (`gc.freeze`), where
later collections during invocations no longer walk it either. This is the pattern the gc module's
documentation gives for long-lived state (disable early, freeze once loaded, then enable).

Only on Lambda: a process that loads handlers again and again (local mode, the tests) would keep
every object frozen at each load for good.
"""

import gc
import os


def loading() -> None:
    """Called first by a handler module, before its imports."""
    gc.disable()


def loaded() -> None:
    """Called last by a handler module, once everything it imports at init is loaded."""
    if "AWS_LAMBDA_RUNTIME_API" in os.environ:  # set by Lambda's runtime, never by local mode
        gc.freeze()
    gc.enable()
