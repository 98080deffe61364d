"""CC359's six scanner domains and its file-naming convention.

Image: ``CC{id:04d}_{vendor}_{15|3}_{age}_{M|F}.nii.gz``; brain mask: the same stem + ``_ss.nii.gz``
(the "Silver standard" consensus masks). Domains are vendor × field strength; each has a fixed id range.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

IMAGE_SUFFIX = ".nii.gz"
MASK_SUFFIX = "_ss.nii.gz"


@dataclass(frozen=True)
class Domain:
    name: str  # as in the file names: "{vendor}_{field}"
    vendor: str
    field: str  # "15" (1.5T) or "3" (3T), as written in CC359 file names
    first_id: int
    last_id: int  # inclusive
    label: str  # human-readable, for tables and figures

    @property
    def ids(self) -> list[int]:
        return list(range(self.first_id, self.last_id + 1))

    @property
    def short(self) -> str:
        """Short column label as in the paper's tables (e.g. ``Sm1.5``)."""
        vendor = {"siemens": "Sm", "ge": "GE", "philips": "Ph"}[self.vendor]
        return vendor + ("1.5" if self.field == "15" else "3")


# Order = the paper's domain indices 0..5.
DOMAINS: dict[str, Domain] = {
    d.name: d
    for d in (
        Domain("siemens_15", "siemens", "15", 120, 179, "Siemens 1.5T"),
        Domain("siemens_3", "siemens", "3", 180, 239, "Siemens 3T"),
        Domain("ge_15", "ge", "15", 240, 299, "GE 1.5T"),
        Domain("ge_3", "ge", "3", 300, 359, "GE 3T"),
        Domain("philips_15", "philips", "15", 1, 59, "Philips 1.5T"),
        Domain("philips_3", "philips", "3", 60, 119, "Philips 3T"),
    )
}

_NAME = re.compile(
    r"^CC(?P<id>\d{4})_(?P<vendor>[a-z]+)_(?P<field>\d+)_(?P<age>\d+)_(?P<sex>[MF])"
    r"(?P<mask>_ss)?\.nii\.gz$"
)
# Anything that starts like a CC359 case file; used to report names that *look* like CC359 but do not parse.
LOOKS_LIKE_CC359 = re.compile(r"^CC\d{4}_.*\.nii(\.gz)?$")


class CC359NameError(ValueError):
    """A file name that looks like CC359 but breaks its convention."""


@dataclass(frozen=True)
class CaseName:
    case: str  # "CC0001"
    domain: str  # "philips_15"
    age: int
    sex: str
    is_mask: bool

    @property
    def image_name(self) -> str:
        return format_name(self.case, self.domain, self.age, self.sex)

    @property
    def mask_name(self) -> str:
        return format_name(self.case, self.domain, self.age, self.sex, mask=True)


def domain_of_vendor_field(vendor: str, field: str) -> str:
    name = f"{vendor}_{field}"
    if name not in DOMAINS:
        known = ", ".join(DOMAINS)
        raise CC359NameError(f"unknown domain {name!r} (vendor {vendor!r}, field {field!r}); known domains: {known}")
    return name


def parse_name(filename: str) -> CaseName:
    """Parse a CC359 file name (base name only). Raises ``CC359NameError`` with the reason when it does not fit."""
    match = _NAME.match(filename)
    if not match:
        raise CC359NameError(
            f"file name {filename!r} does not follow CC359's convention "
            "CC{id:04d}_{vendor}_{15|3}_{age}_{M|F}.nii.gz (mask: same stem + _ss.nii.gz)"
        )
    domain = domain_of_vendor_field(match["vendor"], match["field"])
    number = int(match["id"])
    spec = DOMAINS[domain]
    if not spec.first_id <= number <= spec.last_id:
        raise CC359NameError(
            f"file name {filename!r}: id {number} is outside {domain}'s range "
            f"CC{spec.first_id:04d}-CC{spec.last_id:04d}"
        )
    return CaseName(f"CC{number:04d}", domain, int(match["age"]), match["sex"], match["mask"] is not None)


def format_name(case: str, domain: str, age: int, sex: str, mask: bool = False) -> str:
    spec = DOMAINS[domain]
    suffix = MASK_SUFFIX if mask else IMAGE_SUFFIX
    return f"{case}_{spec.vendor}_{spec.field}_{age}_{sex}{suffix}"


def case_id(number: int) -> str:
    return f"CC{number:04d}"


def domain_of_case(case: str) -> str:
    """Domain of a case id such as ``CC0123`` (from CC359's id ranges)."""
    number = int(case[2:])
    for domain in DOMAINS.values():
        if domain.first_id <= number <= domain.last_id:
            return domain.name
    raise ValueError(f"case id {case!r} is outside every CC359 domain's id range")


def expected_counts() -> dict[str, int]:
    """Scans per domain in the complete dataset (359 in all; philips 1.5T has 59)."""
    return {name: len(d.ids) for name, d in DOMAINS.items()}


def subject_ids(domain: str, n_subjects: int) -> list[str]:
    """The first ``n_subjects`` ids of the domain's CC359 id range; all of them when it has fewer (60 gives every
    domain whole: philips_15 has 59)."""
    ids = DOMAINS[domain].ids
    if not 1 <= n_subjects <= 60:
        raise ValueError(f"subjects per domain must be between 1 and 60, got {n_subjects}")
    return [case_id(i) for i in ids[:n_subjects]]
