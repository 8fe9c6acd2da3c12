"""Settings: defaults, then a TOML file, then ``VOSPACE_*`` environment variables.

The TOML file is ``$VOSPACE_CONFIG`` or ``<data_dir>/vospace.toml`` when present; its keys
are the field names below (``port = 8443``). Each field can also be set with the
upper-cased environment variable, e.g. ``VOSPACE_DATABASE_URL``, or read from the file that
``VOSPACE_<NAME>_FILE`` names (how container secrets arrive), e.g. ``VOSPACE_PREAUTH_SECRET_FILE``.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path


@dataclass
class Settings:
    data_dir: str = os.path.expanduser("~/.local/share/vospace")
    host: str = "127.0.0.1"
    port: int = 8443
    tls: bool = False
    database_url: str = ""       # default: SQLite file in data_dir
    migrate_on_start: bool = True  # upgrade the schema at start-up (else: vospace migrate)
    blob_dir: str = ""           # default: data_dir/blobs
    arc_root: str = ""           # default: data_dir/arc
    authority: str = "localhost"
    public_url: str = ""         # default: taken from each request's Host header
    data_port: int = 0           # the data port for bulk bytes (0: none, all on `port`)
    data_url: str = ""           # its public base URL; default: see services/requests.py
    admin_user: str = "admin"
    max_xml_bytes: int = 1024 * 1024
    preauth_secret: str = ""     # default: generated once into data_dir/preauth-secret
    preauth_lifetime: int = 86400  # seconds a pre-authorized URL stays valid
    blob_url: str = ""           # "" = files in blob_dir; s3://bucket[/prefix] = S3
    blob_copies: str = ""        # more vault stores kept in step (URLs; README "Copies")
    copy_max_wait: int = 10      # seconds a background copy gives way to transfers at most
    s3_endpoint_url: str = ""    # e.g. http://minio:9000 (default: AWS)
    s3_access_key: str = ""      # default: boto3's usual credential chain
    s3_secret_key: str = ""
    s3_region: str = ""
    s3_redirect_downloads: bool = True  # vault downloads 303 to presigned S3 URLs
    login_token_hours: int = 24  # lifetime of tokens (and session cookies) from /ac/login
    header_timeout: int = 15     # seconds a client may take to send a request's headers
    shutdown_timeout: int = 60   # on SIGTERM: seconds requests in flight get to finish
    workers: int = 1             # server processes sharing the ports (README "Workers")
    max_header_bytes: int = 64 * 1024
    oidc_issuer: str = ""        # set to accept OpenID Connect JWT access tokens
    oidc_audience: str = ""
    oidc_jwks_file: str = ""     # the issuer's keys from a file, or
    oidc_jwks_url: str = ""      # fetched from the issuer
    oidc_user_claim: str = "preferred_username"
    version_keep: int = 10       # vault: previous contents kept per DataNode (0: none)
    version_max_age_days: int = 30  # vault: versions older than this are pruned (0: never)
    snapshot_schedule: str = ""  # arc: "daily" (or "hourly") takes snapshots in the background
    snapshot_keep: int = 7       # arc: scheduled snapshots kept per home/project
    snapshot_dir: str = ""       # arc snapshots; default: data_dir/arc-snapshots
    posix_uid_start: int = 10000  # first POSIX uid handed to a user (see posix-mapper)
    posix_gid_start: int = 20000  # first POSIX gid handed to a group
    metrics_token: str = ""      # bearer token a Prometheus scraper may use on /metrics
    access_log: bool = True      # one JSON line per request on stderr (vospace.access)
    # Sessions (/skaha, see sessions/__init__.py). Resource options are comma-separated.
    session_runner: str = "local"     # local (bubblewrap sandboxes) | kubernetes
    session_dir: str = ""             # local runner: per-session dirs; default data_dir/sessions
    session_images: str = ""          # image catalogue (TOML); default: sessions/images.toml
    session_cores: str = "1,2,4,8"    # core counts a session may ask for
    session_ram: str = "1,2,4,8,16,32"  # RAM options, GB
    session_gpus: str = "0"
    session_default_cores: int = 1    # request of a flexible session (and a fixed one's default)
    session_default_ram: int = 2
    session_limit_cores: int = 2      # limit of a flexible session
    session_limit_ram: int = 8
    session_max_interactive: int = 3  # Pending or Running non-headless sessions per user
    session_expiry: int = 345600      # seconds an interactive session lives (renewable)
    session_headless_expiry: int = 1209600
    session_finished_ttl: int = 3600  # finished sessions stay listed this long
    session_home_quota_gb: int = 10   # quota of an arc home made by a first launch
    session_cgroup_root: str = "/sys/fs/cgroup"  # "" = rlimits only
    session_log_max_mb: int = 256     # a local session's output file is emptied past this
    # Each interactive session's app is served on a browser origin of its own,
    # <session id>.<session_domain> (sessions/hosts.py); wildcard DNS and certificate needed.
    session_domain: str = "sessions.localhost"
    k8s_namespace: str = "skaha-workload"
    k8s_arc_claim: str = "cavern-volume-claim"  # PVC holding the arc tree (CephFS in production)
    k8s_arc_subpath: str = "cavern"

    def __post_init__(self) -> None:
        self.resolve_defaults()

    def resolve_defaults(self) -> None:
        self.data_dir = os.path.abspath(os.path.expanduser(self.data_dir))
        if not self.database_url:
            self.database_url = f"sqlite:///{os.path.join(self.data_dir, 'vospace.db')}"
        self.blob_dir = self.blob_dir or os.path.join(self.data_dir, "blobs")
        self.arc_root = self.arc_root or os.path.join(self.data_dir, "arc")
        self.snapshot_dir = self.snapshot_dir or os.path.join(self.data_dir, "arc-snapshots")
        self.session_dir = self.session_dir or os.path.join(self.data_dir, "sessions")

    @property
    def accepted_authorities(self) -> frozenset[str]:
        """Authorities accepted in incoming vos URIs: ours, and the one the CADC client
        uses for short URIs (``vos:x`` -> ``ivo://opencadc.org/vault``) against local servers."""
        return frozenset({self.authority, "opencadc.org"})


def _coerce(kind: type, value: object) -> object:
    if kind is str and isinstance(value, list):  # a TOML list of URLs (blob_copies)
        return " ".join(str(v) for v in value)
    if kind is bool and isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return kind(value)


def load_settings(overrides: dict[str, object] | None = None,
                  environ: dict[str, str] | None = None) -> Settings:
    """Build Settings from TOML file, environment and explicit overrides (highest last)."""
    environ = dict(os.environ if environ is None else environ)
    types = {f.name: f.type for f in fields(Settings)}
    kinds = {"int": int, "bool": bool, "str": str}
    values: dict[str, object] = {}
    data_dir = (overrides or {}).get("data_dir") or environ.get("VOSPACE_DATA_DIR") \
        or Settings.data_dir
    config_file = environ.get("VOSPACE_CONFIG") or os.path.join(
        os.path.expanduser(str(data_dir)), "vospace.toml")
    if Path(config_file).is_file():
        with open(config_file, "rb") as fh:
            values.update(tomllib.load(fh))
    for name in types:
        secret_file = environ.get(f"VOSPACE_{name.upper()}_FILE")
        if secret_file:  # Docker/Kubernetes secrets are files: VOSPACE_PREAUTH_SECRET_FILE=...
            values[name] = Path(secret_file).read_text().strip()
        env_value = environ.get(f"VOSPACE_{name.upper()}")
        if env_value is not None:
            values[name] = env_value
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    unknown = set(values) - set(types)
    if unknown:
        raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
    return Settings(**{k: _coerce(kinds[str(types[k])], v) for k, v in values.items()})
