"""Generated over every field of every experiment config: each field has a constraint, and a bad value
given as `--set FIELD=VALUE` is refused with a ConfigError that names the field."""

import typing

import annotated_types as at
import pytest

from ticketlab.app import _field_names, _sub_model, make_config
from ticketlab.config import ConfigError
from ticketlab.experiments import available, get_experiment

FREE_TEXT = {"scale"}  # set by make_config itself, never by --set


def _field(model, dotted):
    *head, last = dotted.split(".")
    for name in head:
        model = _sub_model(model.model_fields[name].annotation)
    return model.model_fields[last]


def bad_value(info):
    """A value the field's own constraint refuses, or None when it has none."""
    ann, meta = info.annotation, info.metadata
    if typing.get_origin(ann) is typing.Literal:
        return "no-such-choice"
    for m in meta:
        if isinstance(m, at.Ge):
            return m.ge - 1
        if isinstance(m, at.Gt):
            return m.gt - (1 if ann is int else 0)
        if isinstance(m, (at.Le, at.Lt)):
            return (m.le if isinstance(m, at.Le) else m.lt) + 1
        if isinstance(m, at.MinLen):
            return []
    if any(getattr(m, "pattern", None) for m in meta):
        return "!not-allowed!"
    if ann is bool:
        return "maybe"
    return None


CASES = [(name, f) for name in available() for f in _field_names(get_experiment(name).Config) if f not in FREE_TEXT]


@pytest.mark.parametrize("name,field", CASES)
def test_every_field_is_constrained_and_a_bad_value_names_it(name, field):
    exp = get_experiment(name)
    value = bad_value(_field(exp.Config, field))
    assert value is not None, f"{name}.{field} has no constraint"
    text = value if isinstance(value, str) else ("[]" if value == [] else repr(value))
    with pytest.raises(ConfigError, match=field.split(".")[-1]):
        make_config(exp, "quick", None, [f"{field}={text}"])
