"""The application's services, built once in the app's lifespan (or by the
CLI) and handed to whoever needs them. No module-level state anywhere."""

from __future__ import annotations

from dataclasses import dataclass, field

from deckhand.artifacts import ArtifactStore, open_store
from deckhand.artifacts.sweep import ArtifactSweeper
from deckhand.auth import Principal
from deckhand.brains.resolve import BrainResolver
from deckhand.config import Settings
from deckhand.engine.identity import WorkerIdentity
from deckhand.engine.lifecycle import Lifecycle
from deckhand.engine.llm_credentials import LlmCredentials
from deckhand.engine.notify import Notifier
from deckhand.engine.schedule_fire import Firer
from deckhand.engine.scheduler import Scheduler
from deckhand.engine.submit import RunSubmitter
from deckhand.engine.worker import Worker
from deckhand.engine.workflow_lifecycle import WorkflowLifecycle
from deckhand.engine.workflow_worker import WorkflowWorker
from deckhand.events.webhooks import WebhookDispatcher
from deckhand.machine_agent import SettlePolicy
from deckhand.machines.local import LocalMachineProvider
from deckhand.machines.service import MachineService
from deckhand.metering import UsageMeter
from deckhand.store import keys as keys_store
from deckhand.store.db import Database


@dataclass
class Services:
    settings: Settings
    db: Database
    secret: bytes
    usage: UsageMeter
    notifier: Notifier
    lifecycle: Lifecycle
    machines: MachineService
    webhooks: WebhookDispatcher
    submitter: RunSubmitter
    workflows: WorkflowLifecycle
    brains: LlmCredentials
    identity: WorkerIdentity
    artifacts: ArtifactStore
    artifact_sweeper: ArtifactSweeper
    firer: Firer
    scheduler: Scheduler | None = None
    workers: list[Worker] = field(default_factory=list)
    workflow_workers: list[WorkflowWorker] = field(default_factory=list)

    @classmethod
    async def build(cls, settings: Settings, *, migrate: bool = True) -> Services:
        settings.ensure_data_dir()
        db = Database(settings.resolved_database_url)
        if migrate:
            await db.migrate()
        secret = settings.secret()
        notifier = Notifier(db)
        lifecycle = Lifecycle(notifier)
        brains = LlmCredentials(BrainResolver(settings), secret)
        artifacts = open_store(settings.artifacts_url, settings.data_dir)
        submitter = RunSubmitter(lifecycle, secret, settings.max_steps_ceiling, brains=brains)
        return cls(
            settings=settings, db=db, secret=secret, usage=UsageMeter(db), notifier=notifier,
            lifecycle=lifecycle, submitter=submitter, firer=Firer(submitter, notifier),
            machines=MachineService(db, secret, LocalMachineProvider(
                settings.data_dir, settle=SettlePolicy(settings.settle_quiet_ms,
                                                       settings.settle_cap_ms),
                pids_max=settings.machine_pids_max, host_allow=settings.machine_host_allow),
                settings),
            webhooks=WebhookDispatcher(db, secret, settings),
            workflows=WorkflowLifecycle(notifier, lifecycle, secret),
            brains=brains, identity=WorkerIdentity(settings.data_dir),
            artifacts=artifacts, artifact_sweeper=ArtifactSweeper(
                db, artifacts, retention_days=settings.artifacts_retention_days,
                grace_seconds=settings.artifacts_orphan_grace_seconds,
                every_seconds=settings.artifacts_sweep_seconds),
        )

    def new_worker(self, slots: int) -> Worker:
        """A run worker; the first one of this process gets the data dir's
        identity when the process holds it (engine/identity.py)."""
        return Worker(
            self.db, self.notifier, self.lifecycle, self.machines.connect, slots=slots,
            lease_seconds=self.settings.lease_seconds,
            poll_seconds=self.settings.poll_interval_seconds, brains=self.brains,
            worker_id=self.identity.take(Worker.kind),
            artifacts=self.artifacts if self.settings.record_screens else None,
        )

    def new_workflow_worker(self) -> WorkflowWorker:
        return WorkflowWorker(
            self.db, self.notifier, self.workflows, self.submitter,
            slots=self.settings.workflow_slots, lease_seconds=self.settings.lease_seconds,
            poll_seconds=self.settings.poll_interval_seconds,
            child_limit=self.settings.workflow_max_concurrent_tasks,
            worker_id=self.identity.take(WorkflowWorker.kind),
        )

    def start_scheduler(self) -> None:
        """Fire due schedules in this process (``serve`` and ``worker``)."""
        if not self.settings.scheduler or self.scheduler is not None:
            return
        s = self.settings
        self.scheduler = Scheduler(self.db, self.notifier, self.firer, batch=s.scheduler_batch,
                                   max_sleep=s.scheduler_max_sleep_seconds,
                                   misfire_grace=s.schedule_misfire_grace_seconds,
                                   catch_up=s.schedule_catch_up)
        self.scheduler.start()

    def start_workflow_worker(self) -> None:
        """Interpret workflow runs in this process (``serve`` and ``worker``)."""
        worker = self.new_workflow_worker()
        worker.start()
        self.workflow_workers.append(worker)

    async def start(self, *, workers: bool = True, api: bool = True) -> None:
        """Start the background parts: wake-ups, webhooks and, with ``api``, the
        machine supervisor (re-attach, warm pool, sweeper: it belongs with the
        host that keeps the machines) and metering; with ``workers``, run workers
        (``settings.workers`` run slots)."""
        self.notifier.on("webhooks", lambda _key: self.webhooks.wake())
        await self.notifier.start()
        if api:
            await self.machines.start()
        self.webhooks.start()
        if api:
            self.usage.start()
            self.artifact_sweeper.start()
        if workers and self.settings.workers > 0:
            worker = self.new_worker(self.settings.workers)
            worker.start()
            self.workers.append(worker)
            self.start_workflow_worker()
        if workers:
            self.start_scheduler()

    async def close(self) -> None:
        if self.scheduler is not None:
            await self.scheduler.stop()
            self.scheduler = None
        for wf_worker in self.workflow_workers:
            await wf_worker.stop()
        self.workflow_workers.clear()
        for worker in self.workers:
            await worker.stop()
        self.workers.clear()
        self.identity.release()  # only once no loop claims under it
        await self.webhooks.stop()
        await self.usage.stop()
        await self.artifact_sweeper.stop()
        await self.notifier.stop()
        await self.machines.close()
        await self.artifacts.close()
        await self.db.dispose()

    async def authenticate(self, raw_key: str) -> Principal | None:
        async with self.db.read() as conn:
            return await keys_store.authenticate(conn, secret=self.secret, raw_key=raw_key)

    async def principal_of_key(self, key_id: str) -> Principal | None:
        """A dashboard session's principal: the key it names, unless revoked."""
        async with self.db.read() as conn:
            return await keys_store.principal_by_id(conn, key_id)
