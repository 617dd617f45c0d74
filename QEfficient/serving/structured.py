"""Structured output requests, as OpenAI and vLLM take them: which grammar a request asks for.

- ``response_format``: ``{"type": "json_object"}`` (any JSON object), ``{"type": "json_schema", "json_schema":
  {"schema": {...}}}`` (``{"type": "text"}`` is none), or vLLM's ``{"type": "structural_tag", "structures": [{"begin":
  "<function=f>", "schema": {...}, "end": "</function>"}], "triggers": ["<function="]}``: free text in which each
  trigger starts one of the structures, its arguments held to the schema;
- vLLM's ``structured_outputs``: ``{"json": schema}``, ``{"regex": ...}``, ``{"choice": [...]}``, ``{"grammar":
  Lark or GBNF}``, ``{"json_object": true}`` or ``{"structural_tag": the same object, or its JSON text}``; and its
  older ``guided_json``, ``guided_regex``, ``guided_choice``, ``guided_grammar``.

Both routes, at most one per request. JSON is written without free whitespace (vLLM's ``disable_any_whitespace``);
vLLM's options this server does not honour (a whitespace pattern, another backend) are refused.
The grammar itself is checked when the request's constraint is built (generation/constraints.py): an invalid one is
a 400 too.
"""

from __future__ import annotations

from typing import Any

from QEfficient.serving.errors import APIError

_GUIDED = {"guided_json": "json", "guided_regex": "regex", "guided_choice": "choice", "guided_grammar": "grammar"}
_STRUCTURED = {
    "json": "json",
    "regex": "regex",
    "choice": "choice",
    "grammar": "grammar",
    "json_object": "json",
    "structural_tag": "structural_tag",
}


# fields that change what vLLM's grammars allow, which this server does not honour: a 400 unless neutral
_UNHONOURED = {"guided_whitespace_pattern": (None,), "guided_decoding_backend": (None, "auto", "guidance", "llguidance")}
_STRUCTURED_NEUTRAL = {"disable_any_whitespace": (None, True), "disable_additional_properties": (None, False)}


def requested_grammar(body: dict) -> tuple[str, Any, str] | None:
    """(kind, spec, field) of the grammar ``body`` asks for ("json" with a schema or True, "regex", "choice",
    "grammar"; ``field``: where it was asked for), or None; a 400 for a malformed, ambiguous or unsupported request."""
    asked: list[tuple[str, str, Any]] = []  # (field, kind, spec)
    if body.get("response_format") is not None:
        asked += _response_format(body["response_format"])
    for name, kind in _GUIDED.items():
        if body.get(name) is not None:
            asked.append((name, kind, body[name]))
    for name, neutral in _UNHONOURED.items():
        if body.get(name) not in neutral:
            raise APIError(400, f"'{name}' is not supported by this server (structured output runs on llguidance); leave it out.", name)
    structured = body.get("structured_outputs")
    if structured is not None:
        if not isinstance(structured, dict):
            raise APIError(400, "'structured_outputs' must be an object such as {\"json\": {...}}.", "structured_outputs")
        for name, value in structured.items():
            if value is None or _STRUCTURED_NEUTRAL.get(name, ()) and value in _STRUCTURED_NEUTRAL[name]:
                continue
            if name not in _STRUCTURED:
                raise APIError(
                    400,
                    f"'structured_outputs.{name}' is not supported by this server; it takes one of {', '.join(_STRUCTURED)}.",
                    "structured_outputs",
                )
            if name == "json_object" and value is not True:
                raise APIError(400, "'structured_outputs.json_object' must be true (or left out).", "structured_outputs")
            asked.append((f"structured_outputs.{name}", _STRUCTURED[name], value))
    if len(asked) > 1:
        raise APIError(400, f"Ask for one structured output, not {len(asked)}: {', '.join(a[0] for a in asked)}.", asked[1][0])
    if not asked:
        return None
    field, kind, spec = asked[0]
    _check_spec(field, kind, spec)
    if kind == "structural_tag":
        spec = structural_tags(field, spec)
    return kind, spec, field.split(".")[0]


def _response_format(value) -> list[tuple[str, str, Any]]:
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return []
    if kind == "json_object":
        return [("response_format", "json", True)]
    if kind == "json_schema":
        schema = value.get("json_schema")
        schema = schema.get("schema") if isinstance(schema, dict) else None
        if not isinstance(schema, dict):
            raise APIError(400, "'response_format.json_schema.schema' must be a JSON schema (an object).", "response_format")
        return [("response_format", "json", schema)]
    if kind == "structural_tag":
        return [("response_format", "structural_tag", value)]
    raise APIError(400, "'response_format' must have the type text, json_object, json_schema or structural_tag.", "response_format")


def structural_tags(field: str, spec) -> list[dict]:
    """The structures of a structural tag (vLLM's form: ``structures`` [{begin, schema, end}] and ``triggers``), each
    with the trigger its ``begin`` starts with; a 400 that says what to send for anything else."""
    where = field.split(".")[0]
    if isinstance(spec, str):  # structured_outputs.structural_tag: vLLM takes the object's JSON text
        import json

        try:
            spec = json.loads(spec)
        except ValueError:
            raise APIError(400, f"'{field}' must be a structural tag object or its JSON text.", where) from None
    if not isinstance(spec, dict) or "structures" not in spec or "triggers" not in spec:
        raise APIError(
            400,
            f"'{field}' must have 'structures' ([{{\"begin\", \"schema\", \"end\"}}]) and 'triggers' (strings each begin "
            "starts with), as vLLM's structural tags.",
            where,
        )
    triggers, structures = spec["triggers"], spec["structures"]
    if not isinstance(triggers, list) or not triggers or not all(isinstance(t, str) and t for t in triggers):
        raise APIError(400, f"'{field}.triggers' must be a non-empty list of non-empty strings.", where)
    if not isinstance(structures, list) or not structures:
        raise APIError(400, f"'{field}.structures' must be a non-empty list of {{begin, schema, end}} objects.", where)
    tags = []
    for i, item in enumerate(structures):
        ok = isinstance(item, dict) and isinstance(item.get("begin"), str) and isinstance(item.get("end"), str)
        if not ok or not isinstance(item.get("schema", {}), (dict, str)):
            raise APIError(
                400,
                f"'{field}.structures[{i}]' must have the strings 'begin' and 'end' and a 'schema' (a JSON schema, or a Lark "
                "grammar's text).",
                where,
            )
        trigger = next((t for t in triggers if item["begin"].startswith(t)), None)
        if trigger is None:
            raise APIError(400, f"'{field}.structures[{i}].begin' ({item['begin']!r}) starts with none of the triggers {triggers}.", where)
        tags.append({"trigger": trigger, "begin": item["begin"], "schema": item.get("schema", {}), "end": item["end"]})
    return tags


def _check_spec(field: str, kind: str, spec) -> None:
    if kind == "json" and not (spec is True or isinstance(spec, (dict, str))):
        raise APIError(400, f"'{field}' must be a JSON schema (an object, or its text).", field.split(".")[0])
    if kind in ("regex", "grammar") and not (isinstance(spec, str) and spec):
        raise APIError(400, f"'{field}' must be a non-empty string.", field.split(".")[0])
    if kind == "choice" and not (isinstance(spec, list) and spec and all(isinstance(c, str) and c for c in spec)):
        raise APIError(400, f"'{field}' must be a non-empty list of non-empty strings.", field.split(".")[0])
