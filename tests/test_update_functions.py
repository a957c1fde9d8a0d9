"""``update()`` runs its function in the writer thread under the directory lock, so the
function must be synchronous: an async one is refused with a clear error, never stored."""

from __future__ import annotations

import gc
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from group_store import DataStore, InvalidArgumentError, Store


async def add_one(value: Any) -> Any:
    return value + 1


class AsyncCallable:
    """An async callable that ``inspect.iscoroutinefunction`` does not recognise."""

    def __call__(self, value: Any) -> Any:
        return add_one(value)


@contextmanager
def no_unawaited_coroutine() -> Iterator[None]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
        gc.collect()  # an unclosed coroutine warns "never awaited" when it is collected
    assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == []


@pytest.mark.parametrize(
    "function", [add_one, AsyncCallable(), lambda value: add_one(value)], ids=["def", "obj", "lambda"]
)
def test_update_refuses_an_async_function_and_writes_nothing(tmp_path: Path, function: Any, backend: str) -> None:
    store = Store(tmp_path)
    store.save("n", 1)
    with no_unawaited_coroutine(), pytest.raises(InvalidArgumentError, match="synchronous function") as info:
        store.update("n", function)
    assert (info.value.key, info.value.path) == ("n", store.storage.locator("", "n.json"))
    if backend == "local":
        assert info.value.path == str(tmp_path / "n.json")
    assert store.load("n") == 1


@pytest.mark.anyio
@pytest.mark.parametrize("function", [add_one, AsyncCallable()], ids=["def", "obj"])
async def test_data_store_update_refuses_an_async_function_and_writes_nothing(tmp_path: Path, function: Any) -> None:
    async with DataStore(tmp_path) as store:
        with no_unawaited_coroutine(), pytest.raises(InvalidArgumentError, match="synchronous function"):
            await store.update("n", function, default=0)
        assert not await store.exists("n")
        assert await store.update("n", lambda value: value + 1, default=0) == 1  # the store keeps working


def test_update_refuses_what_is_not_a_function(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="needs a function"):
        Store(tmp_path).update("n", 5, default=0)  # type: ignore[arg-type]
