"""Patches of moto's internals that make local mode faithful and fast (DESIGN.md). Each returns its undo.

- moto's DynamoDB does not make condition-check-plus-write atomic across threads: its write methods
  (and the readers that iterate the same dicts) are serialised with one lock, and its transaction
  rollback, which deep-copies the whole table, is replaced with a snapshot of the touched items.
- moto dedupes Express execution names, which AWS does not (a retried StartExecution runs twice there).
- moto rebuilds on every call what depends only on a class or a string (boto3 clients, parsed
  JSONPaths, URL tables): cached here, so the same code runs minus CPU time that every handler thread
  would otherwise queue for behind the GIL.

moto is pinned to an exact version (pyproject.toml) because these touch its internals.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

_DYNAMODB_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item")
# moto's readers iterate the same dicts the writers mutate ("dictionary changed size during iteration").
_DYNAMODB_READS = ("get_item", "query", "scan", "batch_get_item")


def serialize_dynamodb_writes() -> Callable[[], None]:
    """Make moto's conditional writes atomic across threads (as DynamoDB's are); returns the undo.
    Reads take the same lock: moto's readers are not safe against concurrent writers. So does each
    whole request: moto's request handlers also touch items outside the backend's methods (update_item
    deep-copies the live item it read, which a concurrent update of the same item was changing:
    "dictionary changed size during iteration").

    Also replaces moto's transaction rollback, which deep-copies the whole table on every
    TransactWriteItems (O(table size) per claim), with a snapshot of only the items the transaction
    touches. Under the write lock nothing else can change those items, so the rollback is exact.
    """
    import copy

    import moto.dynamodb.models as dynamodb_models
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler

    class _TableSharingCopy:
        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    originals = {name: getattr(DynamoDBBackend, name) for name in _DYNAMODB_WRITES + _DYNAMODB_READS}
    original_transact = originals["transact_write_items"]

    def transact_with_item_rollback(self_: Any, transact_items: list[dict[str, Any]]) -> Any:
        snapshot = []
        for entry in transact_items:
            op = next(iter(entry.values()))
            table = self_.get_table(op["TableName"])
            key = op["Item"] if "Item" in op else op["Key"]
            hash_value = DynamoType(key[table.hash_key_attr])
            range_value = DynamoType(key[table.range_key_attr])
            current = table.items.get(hash_value, {}).get(range_value)
            snapshot.append((table, hash_value, range_value, copy.deepcopy(current)))
        try:
            return original_transact(self_, transact_items)
        except Exception:
            for table, hash_value, range_value, item in reversed(snapshot):
                if item is None:
                    table.items.get(hash_value, {}).pop(range_value, None)
                else:
                    table.items[hash_value][range_value] = item
            raise

    lock = threading.RLock()
    replacements = {**originals, "transact_write_items": transact_with_item_rollback}
    for name, implementation in replacements.items():

        def locked(self_: Any, *args: Any, __implementation: Any = implementation, **kwargs: Any) -> Any:
            with lock:
                return __implementation(self_, *args, **kwargs)

        setattr(DynamoDBBackend, name, locked)
    original_call_action = DynamoHandler.call_action

    def call_action_locked(self_: Any) -> Any:
        with lock:
            return original_call_action(self_)

    DynamoHandler.call_action = call_action_locked  # type: ignore[method-assign]
    real_copy_module = dynamodb_models.copy
    dynamodb_models.copy = _TableSharingCopy  # type: ignore[assignment]

    def undo() -> None:
        dynamodb_models.copy = real_copy_module
        DynamoHandler.call_action = original_call_action  # type: ignore[method-assign]
        for name, original in originals.items():
            setattr(DynamoDBBackend, name, original)

    return undo


def cache_interpreter_setup() -> Callable[[], None]:
    """Stop moto's ASL interpreter from redoing per state what needs doing once; returns the undo.

    Measured on the executor bench (50 steps), these were a third of the interpreter's CPU, all of it
    under the GIL the handlers need:
    - every Lambda task builds a new boto3 client (`boto_client_for`: ~6 ms each). A client is
      thread-safe and depends only on the region and service, so one per (region, service) is reused.
    - every JSONPath (`$.run_id`, `$$.Map.Item.Value`, ResultPath...) is parsed by a new jsonpath-ng
      parser that rebuilds its yacc tables (~5 ms per task). Parsed paths are immutable: parse each
      once.
    Neither changes what the interpreter computes, only how often it rebuilds the same objects.
    """
    import functools
    import sys

    import jsonpath_ng
    import jsonpath_ng.ext
    from moto.core.models import botocore_stubber
    from moto.stepfunctions.parser.asl.component.common.path import result_path
    from moto.stepfunctions.parser.asl.utils import boto_client, json_path

    original_client_for = boto_client.boto_client_for
    clients: dict[tuple[str, str, bool], Any] = {}
    clients_lock = threading.Lock()

    def client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        key = (region, service, bool(botocore_stubber.enabled))
        with clients_lock:
            if key not in clients:
                clients[key] = original_client_for(region, service, state_credentials)
            return clients[key]

    def holders(of: Any) -> list[Any]:
        """The interpreter's modules that imported `boto_client_for` by name (their own reference)."""
        return [
            module
            for name, module in list(sys.modules.items())
            if name.startswith("moto.stepfunctions.parser") and getattr(module, "boto_client_for", None) is of
        ]

    for module in holders(original_client_for):  # modules imported later take the patched one
        module.boto_client_for = client_for
    original_parsers = (json_path.parse, result_path.parse)
    json_path.parse = functools.lru_cache(maxsize=1024)(jsonpath_ng.ext.parse)
    result_path.parse = functools.lru_cache(maxsize=1024)(jsonpath_ng.parse)

    def undo() -> None:
        json_path.parse, result_path.parse = original_parsers
        for module in holders(client_for):
            module.boto_client_for = original_client_for
        clients.clear()

    return undo


def cache_request_routing() -> Callable[[], None]:
    """Stop moto from rebuilding per request what depends only on a class; returns the undo.

    For every API call moto's stubber rebuilds the backend's URL table (`BaseBackend.urls`: an
    `__import__` of the service's urls module, an environment lookup and string formatting per
    route), and the response class lists its own methods with `inspect.getmembers`. Both depend
    only on the class (S3, whose routes follow environment variables, keeps rebuilding its table).
    """
    import functools

    import moto.core.responses as responses
    from moto.core.base_backend import BaseBackend
    from moto.settings import enable_iso_regions

    original_urls = BaseBackend.__dict__["urls"]
    original_method_names = responses.method_names_from_class
    routes: dict[tuple[type, bool], Any] = {}

    def urls(self: Any) -> Any:
        cls = type(self)
        if next(c for c in cls.__mro__ if "_url_module" in c.__dict__) is not BaseBackend:
            return original_urls.fget(self)  # its routes are not a function of the class alone
        key = (cls, enable_iso_regions())
        if key not in routes:
            routes[key] = original_urls.fget(self)
        return routes[key]

    BaseBackend.urls = property(urls)  # type: ignore[assignment,method-assign]
    responses.method_names_from_class = functools.cache(original_method_names)

    def undo() -> None:
        BaseBackend.urls = original_urls  # type: ignore[method-assign]
        responses.method_names_from_class = original_method_names

    return undo


def keep_states_errors_out_of_map_iterations() -> Callable[[], None]:
    """A Map iteration that fails with a States.* error (a task's States.Timeout) reaches the Map as
    that error, as on AWS. moto wraps every iteration error in a custom error name, whose constructor
    refuses the States. prefix: the run then failed with States.Runtime, which AWS's States.ALL does
    not even catch. Returns the undo."""
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration import iteration_worker

    def error_name(error_name: str) -> Any:
        if error_name.startswith("States."):
            return StatesErrorName.from_name(error_name)
        return CustomErrorName(error_name=error_name)

    iteration_worker.CustomErrorName = error_name  # type: ignore[misc,assignment]

    def undo() -> None:
        iteration_worker.CustomErrorName = CustomErrorName  # type: ignore[misc]

    return undo


def express_executions_repeat_names() -> Callable[[], None]:
    """StartExecution on an Express state machine starts a new execution every time, even under a name
    already used (AWS dedupes names only for Standard). moto dedupes both, which would hide the
    duplicate a retried StartExecution makes on AWS. Returns the undo.

    moto still derives the execution ARN from the name, so the duplicates share one ARN here (AWS
    adds a unique suffix); listing executions shows each of them."""
    from moto.stepfunctions.models import StateMachine

    original = StateMachine._handle_name_input_idempotency

    def dedupe_standard_only(self: Any, name: str, execution_input: str) -> Any:
        if self.type == "EXPRESS":
            return None
        return original(self, name, execution_input)

    StateMachine._handle_name_input_idempotency = dedupe_standard_only  # type: ignore[method-assign]

    def undo() -> None:
        StateMachine._handle_name_input_idempotency = original  # type: ignore[method-assign]

    return undo


# The Lambda function whose handler is running (set by local mode's invoke seam), so each metered
# DynamoDB request is attributed to the function that made it. A context variable, not a thread-local:
# the threads a handler fans out to (discovery's workers) run in a copy of its context.
running_function: ContextVar[str] = ContextVar("running_function", default="")


@dataclass
class DynamoCall:
    """One DynamoDB request and the on-demand request units DynamoDB would bill for it."""

    operation: str
    write_units: float = 0.0
    read_units: float = 0.0
    index_write_units: float = 0.0
    failed: bool = False
    function: str = ""


@dataclass
class DynamoMeter:
    """Every DynamoDB request local mode served, with its billed units (see `meter_dynamodb`)."""

    calls: list[DynamoCall] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, call: DynamoCall) -> None:
        call.function = running_function.get()
        with self.lock:
            self.calls.append(call)

    def clear(self) -> None:
        with self.lock:
            self.calls.clear()

    @property
    def write_units(self) -> float:
        return sum(c.write_units + c.index_write_units for c in self.calls)

    @property
    def read_units(self) -> float:
        return sum(c.read_units for c in self.calls)


_WRITE_KB = 1024
_READ_KB = 4096


def _units(size: int, unit: int) -> int:
    return max(1, -(-size // unit))


def meter_dynamodb(meter: DynamoMeter) -> Callable[[], None]:
    """Count what DynamoDB bills for each request moto serves; returns the undo.

    On-demand billing: a write is 1 unit per KB of the larger of the item before and after (2 in a
    transaction, ConditionCheck included); a failed conditional write still costs its units; each
    global secondary index the write changes costs a write of the projected entry (2 when the
    index key moves: delete and put). A read is 1 unit per 4 KB (half eventually consistent, 2 in a
    transaction); a query pays for the items it reads, summed, rounded up per request.
    """
    from moto.dynamodb.models.dynamo_type import DynamoType, Item
    from moto.dynamodb.responses import DynamoHandler

    def table_of(handler: Any, name: str) -> Any:
        return handler.dynamodb_backend.get_table(name)

    def current(table: Any, key: dict[str, Any]) -> Item | None:
        hash_value = DynamoType(key[table.hash_key_attr])
        range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
        bucket = table.items.get(hash_value, {})
        found: Item | None = bucket.get(range_value) if table.range_key_attr else bucket
        return found

    def index_writes(table: Any, before: Item | None, after: Item | None) -> float:
        units = 0.0
        for index in table.global_indexes:
            keys = index.schema_key_attrs
            was = before is not None and all(k in before.attrs for k in keys)
            now = after is not None and all(k in after.attrs for k in keys)
            old = index.project(before) if was and before is not None else None
            new = index.project(after) if now and after is not None else None
            if old is None and new is None:
                continue
            if old is None or new is None:
                units += _units((new or old).size(), _WRITE_KB)  # type: ignore[union-attr]
            elif any(before.attrs[k] != after.attrs[k] for k in keys):  # type: ignore[union-attr]
                units += _units(old.size(), _WRITE_KB) + _units(new.size(), _WRITE_KB)
            elif old.attrs != new.attrs:
                units += _units(new.size(), _WRITE_KB)
        return units

    def snapshot(table: Any, key: dict[str, Any]) -> Item | None:
        """The item as it is before a write (a copy: moto updates items in place)."""
        found = current(table, key)
        return copy.deepcopy(found) if found is not None else None

    def item_write_units(
        table: Any, key: dict[str, Any], before: Item | None, after: Item | None, put: dict[str, Any] | None
    ) -> int:
        """Units of one item's write: per KB of the larger of the item before and after (or the item
        a put sent, which a failed condition never stored)."""
        sizes = [item.size() for item in (before, after) if item is not None]
        if put is not None:
            sizes.append(Item(DynamoType(key[table.hash_key_attr]), None, put).size())
        return _units(max(sizes, default=0), _WRITE_KB)

    def write(
        handler: Any, original: Any, name: str, key_of: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> Any:
        body = handler.body
        table = table_of(handler, body["TableName"])
        key = key_of(body)
        before = snapshot(table, key)
        call = DynamoCall(name)
        try:
            return original(handler)
        except Exception:
            call.failed = True
            raise
        finally:
            after = current(table, key)
            put = body["Item"] if name == "put_item" else None
            call.write_units = item_write_units(table, key, before, after, put)
            if not call.failed:
                call.index_write_units = index_writes(table, before, after)
            meter.add(call)

    def transact(handler: Any, original: Any) -> Any:
        touched = []
        for entry in handler.body["TransactItems"]:
            (kind, op), *_ = entry.items()
            table = table_of(handler, op["TableName"])
            key = op["Item"] if kind == "Put" else op["Key"]
            touched.append((kind, op, table, key, snapshot(table, key)))
        call = DynamoCall("transact_write_items")
        try:
            return original(handler)
        except Exception:
            call.failed = True
            raise
        finally:
            for kind, op, table, key, before in touched:
                after = current(table, key)
                put = op["Item"] if kind == "Put" else None
                call.write_units += 2 * item_write_units(table, key, before, after, put)
                if not call.failed and kind != "ConditionCheck":
                    call.index_write_units += index_writes(table, before, after)
            meter.add(call)

    def read_units(size: int, consistent: bool) -> float:
        return _units(size, _READ_KB) * (1.0 if consistent else 0.5)

    def get_item(handler: Any, original: Any) -> Any:
        body = handler.body
        found = current(table_of(handler, body["TableName"]), body["Key"])
        meter.add(
            DynamoCall(
                "get_item",
                read_units=read_units(found.size() if found else 0, bool(body.get("ConsistentRead"))),
            )
        )
        return original(handler)

    def batch_get(handler: Any, original: Any) -> Any:
        call = DynamoCall("batch_get_item")
        for name, request in handler.body["RequestItems"].items():
            table = table_of(handler, name)
            for key in request["Keys"]:
                found = current(table, key)
                call.read_units += read_units(
                    found.size() if found else 0, bool(request.get("ConsistentRead"))
                )
        meter.add(call)
        return original(handler)

    def query(handler: Any, original: Any) -> Any:
        body = handler.body
        table = table_of(handler, body["TableName"])
        response = original(handler)
        index = next((i for i in table.global_indexes if i.name == body.get("IndexName")), None)
        keys = (table.hash_key_attr, table.range_key_attr)
        size = 0
        for attrs in response.result.get("Items", []):
            # values are DynamoType, or already plain JSON once moto serialized the result
            key = {k: (v.to_json() if hasattr(v, "to_json") else v) for k, v in attrs.items() if k in keys}
            item = current(table, key)
            if item is not None:
                size += (index.project(item) if index is not None else item).size()
        meter.add(DynamoCall("query", read_units=read_units(size, bool(body.get("ConsistentRead")))))
        return response

    def item_key(body: dict[str, Any]) -> dict[str, Any]:
        return dict(body["Key"])

    def put_key(body: dict[str, Any]) -> dict[str, Any]:
        return dict(body["Item"])

    wrappers = {
        "put_item": lambda original: lambda self: write(self, original, "put_item", put_key),
        "update_item": lambda original: lambda self: write(self, original, "update_item", item_key),
        "delete_item": lambda original: lambda self: write(self, original, "delete_item", item_key),
        "transact_write_items": lambda original: lambda self: transact(self, original),
        "get_item": lambda original: lambda self: get_item(self, original),
        "batch_get_item": lambda original: lambda self: batch_get(self, original),
        "query": lambda original: lambda self: query(self, original),
    }
    originals = {name: DynamoHandler.__dict__[name] for name in wrappers}
    for name, wrap in wrappers.items():
        setattr(DynamoHandler, name, wrap(originals[name]))

    def undo() -> None:
        for name, original in originals.items():
            setattr(DynamoHandler, name, original)

    return undo
