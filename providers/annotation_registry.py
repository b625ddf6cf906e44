"""What every provider's annotation registry shares: the entry type, messages, and the reference table.

Each provider declares its annotations once (key, meaning, accepted values, default); the builder's
error messages and the annotation reference in docs/ are both made from that declaration, so they cannot
drift.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

from ccm.cloudprovider import InvalidSpec

Support = Literal["honoured", "rejected", "ignored", "elsewhere"]
HONOURED: Final[Support] = "honoured"
REJECTED: Final[Support] = "rejected"  # accepted upstream in some mode we do not build; an error here
IGNORED: Final[Support] = "ignored"  # accepted and without effect
ELSEWHERE: Final[Support] = "elsewhere"  # the Service is left to another controller

_MARKS: Final = {IGNORED: "**Ignored.** ", REJECTED: "**Rejected.** ", ELSEWHERE: "**Another controller.** "}


@dataclass(frozen=True)
class Annotation:
    """One annotation: what it means, what it accepts, what happens without it."""

    key: str
    description: str
    accepted: str
    default: str
    support: Support = HONOURED


class Registry:
    """A provider's annotations, in the order the reference in docs/ lists them."""

    def __init__(self, entries: Iterable[Annotation]) -> None:
        self.entries: tuple[Annotation, ...] = tuple(entries)
        self.by_key: Mapping[str, Annotation] = MappingProxyType({a.key: a for a in self.entries})

    def invalid(self, *, key: str, value: object, reason: str, accepted: str | None = None) -> InvalidSpec:
        """An :class:`InvalidSpec` for annotation ``key``; ``accepted`` defaults to the registry's text."""
        return InvalidSpec(
            field=key,
            value=value,
            reason=reason,
            accepted=accepted if accepted is not None else self.by_key[key].accepted,
        )

    def unsupported(
        self, *, annotations: Mapping[str, str], prefixes: Iterable[str], keys: Iterable[str] = ()
    ) -> tuple[str, ...]:
        """The load-balancer annotations of ``annotations`` that this provider does not implement.

        A key counts when it starts with one of ``prefixes`` (or is one of ``keys``) and the registry
        either does not know it (a typo, or a setting of another controller's we do not build) or
        declares it ignored. Sorted, for a stable event and condition message.
        """
        prefixes, exact = tuple(prefixes), frozenset(keys)
        return tuple(
            sorted(
                key
                for key in annotations
                if (key.startswith(prefixes) or key in exact)
                and (key not in self.by_key or self.by_key[key].support == IGNORED)
            )
        )

    def markdown(self, *, footer: str = "") -> str:
        """The reference as a Markdown table (and an optional paragraph after it)."""
        lines = ["| Annotation | Accepted values | Default | Meaning |", "|---|---|---|---|"]
        for entry in self.entries:
            meaning = _MARKS.get(entry.support, "") + entry.description
            lines.append(
                f"| `{_cell(entry.key)}` | {_cell(entry.accepted)} | {_cell(entry.default)} | "
                f"{_cell(meaning)} |"
            )
        if footer:
            lines += ["", footer]
        return "\n".join(lines) + "\n"


def text(*, annotations: Mapping[str, str], key: str) -> str | None:
    """The stripped value, or None when the annotation is absent or blank (blank means unset, as upstream)."""
    raw = annotations.get(key)
    if raw is None or not raw.strip():
        return None
    return raw.strip()


def _cell(value: str) -> str:
    return value.replace("|", "\\|").replace("\n", " ")
