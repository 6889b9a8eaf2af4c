"""``key=value`` arguments of ``yolo predict``/``val``/``export``, parsed and checked by Ultralytics' own cfg code."""

from __future__ import annotations

import logging
from typing import Any

from yolocustom.errors import UserError

OWNED = {"model": "give it as MODEL", "source": "give it as SOURCE", "mode": "the subcommand is the mode"}


def parse_yolo_args(items: list[str], owned: dict[str, str] | None = None) -> dict[str, Any]:
    """Turn ``['save_txt=True', 'imgsz=320']`` into overrides, the way the ``yolo`` command does.

    Values go through ``parse_key_value_pair`` (``smart_value``: ``True``, ``0.5``, ``[0, 2]``...), keys through
    ``check_dict_alignment`` against Ultralytics' ``default.yaml`` ("Similar arguments are ..."); a bare boolean key
    (``save_txt``) means True, as with ``yolo``.

    Raises:
        UserError: For an unknown key, a malformed pair or a key the subcommand takes elsewhere.
    """
    from ultralytics.cfg import check_dict_alignment, merge_equals_args, parse_key_value_pair
    from ultralytics.utils import DEFAULT_CFG_DICT

    from yolocustom.resolve import ultralytics_output_to_stderr

    owned = {**OWNED, **(owned or {})}
    overrides: dict[str, Any] = {}
    for item in merge_equals_args(list(items)):
        if "=" not in item:
            if isinstance(DEFAULT_CFG_DICT.get(item), bool):
                overrides[item] = True
                continue
            raise UserError(f"expected key=value (an Ultralytics argument, e.g. save_txt=True), found {item!r}")
        try:
            key, value = parse_key_value_pair(item)
        except (NameError, SyntaxError, ValueError, AssertionError) as e:
            raise UserError(f"{item}: {e}") from None
        if key in owned:
            raise UserError(f"{item}: '{key}' is not a key=value argument here: {owned[key]}")
        overrides[key] = value
    try:
        with ultralytics_output_to_stderr(logging.WARNING):  # without its whole CLI help text
            check_dict_alignment(DEFAULT_CFG_DICT, overrides)
    except SyntaxError as e:
        raise UserError(str(e).strip().replace("\n", "; ")) from None
    return overrides
