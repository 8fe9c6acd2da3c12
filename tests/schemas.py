"""Offline validation of the server's XML against the IVOA schemas in ``../shared/schemas``.

One schema set covers every namespace the server emits (VOSpace, VOSI capabilities and
availability, VODataService for ``vs:ParamHTTP``, UWS), so a test validates any document
with :func:`assert_valid` without choosing a schema. The IVOA copy of VOSpace 2.1 is not
well-formed; CADC's copy is used instead (see ``schemas/README.md``). The schemas'
``schemaLocation`` URLs point at ivoa.net, so every namespace is mapped to its local file.
"""
from __future__ import annotations

import functools
from pathlib import Path

import xmlschema

REPO = Path(__file__).resolve().parent.parent

# CI clones the repository next to ``shared/``; on a work machine it is /work/shared.
SHARED = next((p for p in (REPO.parent / "shared", Path("/work/shared"))
               if (p / "schemas").is_dir()), REPO.parent / "shared")
SCHEMA_DIR = SHARED / "schemas"

# namespace -> local file; VOResource has two versions in one namespace: use one only.
FILES = {
    "http://www.ivoa.net/xml/VOSpace/v2.0": "VOSpace-2.1.cadc.xsd",
    "http://www.ivoa.net/xml/VOSICapabilities/v1.0": "VOSICapabilities-v1.0.xsd",
    "http://www.ivoa.net/xml/VOSIAvailability/v1.0": "VOSIAvailability-v1.0.xsd",
    "http://www.ivoa.net/xml/VODataService/v1.1": "VODataService-v1.1.xsd",
    "http://www.ivoa.net/xml/VOResource/v1.0": "VOResource-v1.0.xsd",
    "http://www.ivoa.net/xml/STC/stc-v1.30.xsd": "STC-v1.3.xsd",
    "http://www.ivoa.net/xml/UWS/v1.0": "UWS-v1.1.xsd",
    "http://www.w3.org/1999/xlink": "XLINK.xsd",
}


@functools.lru_cache(maxsize=1)
def schema() -> xmlschema.XMLSchema:
    """A no-namespace wrapper importing every namespace above (built once per session)."""
    imports = "".join(f'<xs:import namespace="{ns}" schemaLocation="{SCHEMA_DIR / name}"/>'
                      for ns, name in FILES.items())
    wrapper = f'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">{imports}</xs:schema>'
    locations = [(ns, str(SCHEMA_DIR / name)) for ns, name in FILES.items()]
    # "lax" only for building: STC 1.3 (pulled in by VODataService) has restrictions
    # xmlschema deems illegal; documents are still validated strictly.
    return xmlschema.XMLSchema(wrapper, base_url=str(SCHEMA_DIR), locations=locations,
                               validation="lax")


def assert_valid(xml: bytes, what: str = "document") -> None:
    """Fail with the validator's explanation unless ``xml`` is valid against the schemas."""
    errors = list(schema().iter_errors(xml))
    assert not errors, f"{what} is not schema-valid: {errors[0]}\n{xml[:2000]!r}"
