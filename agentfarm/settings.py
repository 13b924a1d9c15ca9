"""One typed settings object for every agentfarm process (environment prefix ``AGENTFARM_``)."""

from __future__ import annotations

import functools
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Settings read from the environment; every field maps to ``AGENTFARM_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="AGENTFARM_", extra="ignore")

    # Infrastructure. When unset, `agentfarm dev` starts embedded servers under data_dir.
    database_url: str | None = None
    redis_url: str | None = None
    data_dir: Path = Path(".agentfarm")

    # Secrets: Fernet keys, newest first (rotation: prepend a new key, re-encrypt, drop the old).
    encryption_keys: SecretStr | None = None

    # API shim
    http_host: str = "127.0.0.1"
    http_port: int = 3000
    access_url: str = "http://127.0.0.1:3000"
    # Experiments, comma-separated (Coder's CODER_EXPERIMENTS). The chat routes need `agents`
    # named explicitly: `*` does not enable it. `agentfarm dev` sets it for its processes.
    experiments: str = ""
    # OIDC users' site roles come from the identity provider (Coder's role sync): they get no
    # automatic agents-access and their roles cannot be changed through the API.
    oidc_role_sync: bool = False

    # Chat loop (Coder's values, reference §3.7)
    heartbeat_interval_s: float = 30.0
    stale_after_s: float = 300.0
    max_queue_size: int = 20
    max_chat_steps: int = 1200
    llm_max_attempts: int = 25
    llm_backoff_initial_s: float = 1.0
    llm_backoff_max_s: float = 60.0
    llm_first_chunk_timeout_s: float = 60.0
    llm_request_timeout_s: float = 600.0
    # Stream openai / openai-compat / openrouter models with the lean direct client
    # (workers/openai_wire.py) instead of litellm's stream wrapper (40x the CPU per token).
    llm_direct_openai: bool = True
    # Stream anthropic models with the direct Messages client (workers/turn/anthropic_wire.py)
    # instead of litellm's (17x the CPU per token); false sends them through litellm again.
    llm_direct_anthropic: bool = True
    title_timeout_s: float = 30.0
    default_max_output_tokens: int = 32_000
    system_prompt: str = (
        "You are a coding agent running inside agentfarm. Work step by step, use the tools you "
        "are given, and report clearly what you did."
    )

    # Event streams
    stream_maxlen: int = 10_000
    stream_ttl_s: int = 86_400
    stream_ping_interval_s: float = 15.0

    # Workers
    worker_processes: int = 1
    worker_threads: int = 8
    # One Prometheus exposition port per worker host (all its processes, multiprocess mode);
    # 0 turns it off.
    worker_metrics_host: str = "0.0.0.0"
    worker_metrics_port: int = 9464
    broker_namespace: str = "dramatiq"
    # How long an idle consumer blocks waiting for a wake-up before it re-polls Redis.
    broker_idle_wait_ms: int = 1000

    # Workspace hosts: the hosts this worker process serves (it consumes workspace.<host>),
    # where their workspace directories live, and how stale a host or worker may get.
    workspace_hosts: str = ""
    workspaces_dir: Path | None = None
    host_ttl_s: float = 30.0
    workspace_ttl_fallback_ms: int = 0
    workspace_autostop_every_s: float = 60.0

    # Scheduler: a Postgres advisory lock elects one leader among the replicas. Every
    # scheduler_poll_s a standby tries the lock and the leader checks it still holds it, so a
    # dead leader is replaced within one interval. /healthz and /metrics are served on
    # scheduler_host:scheduler_port (0 = no endpoint).
    scheduler_lock_key: int = 0x61676674  # "agft"
    scheduler_poll_s: float = 2.0
    scheduler_host: str = "127.0.0.1"
    scheduler_port: int = 9465
    # Periodic jobs: seconds between sends (0 = job off), declared next to each actor.
    recover_stale_every_s: float = 60.0
    retention_purge_every_s: float = 600.0
    # Rows deleted per purge transaction (the window itself is the site setting retention_days).
    retention_batch_size: int = 10_000
    # Cost rollups (usage.rollup): messages rolled up per transaction.
    usage_rollup_every_s: float = 60.0
    usage_rollup_batch_size: int = 5000
    # PR insights: insights.refresh claims up to insights_batch_size stale diff statuses and
    # sends one insights.ingest_pr each; a refreshed status is stale again after
    # insights_stale_after_s (ten times that once its PR is merged or closed). Git providers
    # themselves are AGENTFARM_EXTERNAL_AUTH_<N>_* (agentfarm/external_auth.py).
    insights_refresh_every_s: float = 10.0
    insights_batch_size: int = 50
    insights_stale_after_s: float = 120.0
    insights_http_timeout_s: float = 10.0
    # Web push: the VAPID "sub" claim (a mailto: or https: URL); empty = the access URL when
    # it is https, else mailto:agentfarm@localhost.
    webpush_subject: str = ""

    # Scripted model server used by `agentfarm dev`
    scripted_llm_port: int = 0

    log_level: str = "INFO"
    log_json: bool = Field(default=False)

    @property
    def encryption_key_list(self) -> list[str]:
        """The configured Fernet keys, newest first."""
        if self.encryption_keys is None:
            return []
        raw = self.encryption_keys.get_secret_value()
        return [k.strip() for k in raw.split(",") if k.strip()]


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()


def reset_settings_cache() -> None:
    """Forget the cached settings (tests and the dev launcher change the environment)."""
    get_settings.cache_clear()


def experiment_enabled(settings: Settings, name: str) -> bool:
    """Whether ``AGENTFARM_EXPERIMENTS`` names this experiment (the ``*`` wildcard never counts:
    the only experiment agentfarm has, ``agents``, must be named, as in Coder)."""
    return name in {e.strip() for e in settings.experiments.split(",") if e.strip()}


def workspace_host_list(settings: Settings) -> list[str]:
    """The workspace hosts a worker process serves (``AGENTFARM_WORKSPACE_HOSTS=a,b``)."""
    return [h.strip() for h in settings.workspace_hosts.split(",") if h.strip()]


def workspaces_root(settings: Settings) -> Path:
    """Where this host keeps workspace directories (absolute)."""
    root = settings.workspaces_dir or (settings.data_dir / "workspaces")
    return Path(root).resolve()
