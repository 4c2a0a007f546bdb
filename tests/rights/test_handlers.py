"""Each kind of request is answered by one registered handler object."""

import pytest

from lifecycle.errors import LifecycleError
from lifecycle.rights import handler, handlers
from lifecycle.state.requests import KINDS


def test_every_kind_of_request_has_one_handler_registered_under_its_name():
    assert sorted(handlers()) == sorted(KINDS)
    for kind, found in handlers().items():
        assert found.kind == kind and handler(kind) is found
        assert callable(found.plan) and callable(found.carry_out)


def test_an_unknown_kind_is_refused_naming_the_known_ones():
    with pytest.raises(LifecycleError, match=r"no handler for request kind 'export'; known: access, erase"):
        handler("export")
