"""``yolocustom tune``: sweeps over recipe values on Ray Tune.

``space`` reads and validates a search-space file (no Ray needed until sampling); ``runner`` runs the trials and writes
the results. These are the only yolocustom modules that import ``ray``, and only inside functions or after
:func:`require_ray` has succeeded.
"""

from __future__ import annotations

from yolocustom.errors import UserError

INSTALL_HINT = "yolocustom tune needs Ray Tune, an optional extra: pip install 'yolocustom[tune]'"


def require_ray() -> None:
    """Import Ray Tune or raise a ``UserError`` naming the extra to install."""
    try:
        import ray.tune  # noqa: F401
    except ImportError:
        raise UserError(INSTALL_HINT) from None
