"""Remote firmware update through the edge gateway: the extension behind the firmware_cmd
topic (docs/fleet.md, "Remote update").

Requirements (issue 7):

- A job names seats of this gateway and carries the bundle. It is checked whole before any
  board is touched: a bad bundle, an unknown seat or a seat listed twice makes the job
  invalid, with the reason on its job topic.
- Seats go one at a time, in the order given: a job is a rolling update. The first seat
  that does not come back on the new version is rolled back and the rest are skipped
  (halted), so a bad release costs one seat, not the floor.
- Each seat: its link lets go of the port; the running firmware is read back from the
  board and kept on the gateway's disk (the previous version: a micro:bit v1 cannot hold
  two sets); the new set is written and checked; the board is reset; the link takes the
  port back. The new firmware must say hello (a new boot, the new version) within the
  job's deadline, else the kept version is written back and must say hello in its turn.
- A seat on a call (ringing, talking, on hold) is not taken from its agent: the job waits
  up to `idle_wait_s` for the call to end, then skips the seat.
- Progress is on MQTT: the seat's retained seat_firmware topic at every step (bytes
  written while writing) and the job's retained firmware_job topic.
- A micro:bit v1 seat (its hello names the board `microbit`) takes a whole image at its
  desk (`seatlink flash --image`), never files: a job naming one is invalid, nothing
  touched (and such a seat found only when its turn comes fails untouched).
- Jobs queue (at most QUEUE_MAX waiting); one runs at a time, because each takes a seat
  away from its agent for a few seconds and the link's serial traffic with it.
- A gateway stopped while a seat's new firmware is unproven finishes it after its restart:
  a marker next to the seat's backup says what was written and until when its hello is
  due; the restarted gateway waits for that hello and rolls the seat back without it.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from gateway.contract.payloads import (
    CommandError,
    FirmwareJob,
    FirmwareUpdateCommand,
    Payload,
    SeatFirmwareUpdate,
    UpdateStage,
    parse_firmware_command,
)
from gateway.contract.topics import Topics
from gateway.edge.link import SeatLink
from gateway.fleet.board_update import UpdateError, replace_firmware, restore_firmware
from gateway.fleet.flash import (
    BundleError,
    FileSet,
    Firmware,
    FlashError,
    bundle_document,
    load_bundle,
    parse_bundle,
    save_bundle,
)
from gateway.fleet.image_flash import image_only, takes_image
from gateway.seatlink.codec import State

__all__ = ["FirmwareUpdates"]

log = logging.getLogger(__name__)

_BUSY = (State.RINGING, State.TALKING, State.HOLD)
_HELD_WHY = "firmware update"


class Announce(Protocol):
    def __call__(self, topic: str, payload: Payload) -> None: ...


@dataclass
class _Job:
    command: FirmwareUpdateCommand
    firmware: Firmware
    version: str
    stages: dict[str, UpdateStage] = field(default_factory=dict)


class _Progress:
    """flash's BoardProgress from the worker thread, to the seat's topic on the loop."""

    MIN_INTERVAL_S = 0.25  # bytes written: at most 4 messages a second

    def __init__(self, publish: Callable[..., None], loop: asyncio.AbstractEventLoop) -> None:
        self._publish = publish
        self._loop = loop
        self._total = 0
        self._done = 0
        self._last = 0.0

    def stage(self, text: str) -> None:
        self._send(text, force=True)

    def planned(self, total: int) -> None:
        self._total, self._done = total, 0
        self._send("writing", force=True)

    def advance(self, done: int) -> None:
        self._done += done
        self._send("writing", force=self._done >= self._total)

    def _send(self, text: str, *, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.MIN_INTERVAL_S:
            return
        self._last = now
        self._loop.call_soon_threadsafe(self._publish, text, self._done, self._total)


class FirmwareUpdates:
    """Start with `run()` as a task of the edge service; `request()` takes each message
    from the firmware_cmd topic."""

    QUEUE_MAX = 8
    POLL_S = 0.1
    ROLLBACK_HELLO_S = 60.0  # at least this long for the kept version's hello
    RECOVER_GRACE_S = 10.0  # after a restart: the links reopen and the seats are heard again

    def __init__(self, *, gateway: str, topics: Topics, links: Sequence[SeatLink],
                 backups: Path, announce: Announce) -> None:  # fmt: skip
        self.gateway = gateway
        self.topics = topics
        self.links = links
        self.backups = backups
        self._announce = announce
        self._queue: collections.deque[_Job] = collections.deque()
        self._wake = asyncio.Event()
        self.counts: collections.Counter[str] = collections.Counter()

    # --- requests ----------------------------------------------------------------------------

    def request(self, raw: bytes) -> None:
        """One firmware_cmd message: queued, or refused with the reason on the job topic."""
        try:
            command = parse_firmware_command(raw)
        except CommandError as exc:
            self._invalid(exc.id, str(exc))
            return
        try:
            firmware = parse_bundle(command.bundle, where="bundle")
        except BundleError as exc:
            self._invalid(command.id, str(exc), by=command.by)
            return
        unknown = [s for s in command.seats if self._link(s) is None]
        if unknown:
            self._invalid(command.id, f"not seats of gateway {self.gateway}: "
                          f"{', '.join(unknown)} (nothing was touched)", by=command.by)
            return
        whole = [s for s in command.seats if takes_image(self._board_name(s))]
        if whole:
            self._invalid(command.id, f"{image_only(whole)} (nothing was touched)",
                          by=command.by)  # fmt: skip
            return
        if len(self._queue) >= self.QUEUE_MAX:
            self._invalid(command.id, f"{len(self._queue)} update jobs are waiting already; "
                          "send this one when they are done", by=command.by)  # fmt: skip
            return
        version = next(iter(firmware.for_kind(k).version for k in firmware.kinds()))
        job = _Job(command, firmware, version, {s: "queued" for s in command.seats})
        self._queue.append(job)
        self.counts["jobs"] += 1
        self._job(job, "queued")
        for seat in command.seats:
            self._seat(job, seat, "queued", board=self._board(seat))
        self._wake.set()

    def _invalid(self, job: str | None, detail: str, *, by: str | None = None) -> None:
        self.counts["invalid"] += 1
        log.warning("firmware update %s refused: %s", job or "(no id)", detail)
        self._announce(self.topics.topic("firmware_job", gateway=self.gateway),
                       FirmwareJob(gateway=self.gateway, job=job, by=by, status="invalid",
                                   detail=detail, t=round(time.time(), 3)))  # fmt: skip

    # --- the worker --------------------------------------------------------------------------

    async def run(self) -> None:
        await self._recover()
        while True:
            while not self._queue:
                self._wake.clear()
                await self._wake.wait()
            job = self._queue[0]
            try:
                await self._run_job(job)
            finally:
                self._queue.popleft()

    async def _run_job(self, job: _Job) -> None:
        self._job(job, "running")
        failed: str | None = None
        for seat in job.command.seats:
            if failed is not None:
                self._seat(job, seat, "skipped", detail=f"not tried: {failed}")
                self.counts["skipped"] += 1
                continue
            try:
                stage = await self._update_seat(job, seat)
            except Exception as exc:  # a bug must cost this job, not the gateway
                log.exception("seat %s: firmware update failed", seat)
                stage = self._seat(job, seat, "failed", detail=f"the gateway failed: {exc!r}; "
                                   "check the seat's firmware with seatlink flash --dry-run")
            self.counts[stage] += 1
            if stage not in ("done", "skipped"):
                failed = f"seat {seat} {stage.replace('_', ' ')}"
        if failed is None:
            self._job(job, "done")
        else:
            self._job(job, "halted", detail=f"{failed}; the seats after it were skipped")

    async def _update_seat(self, job: _Job, seat: str) -> UpdateStage:
        link = self._link(seat)
        if link is None:  # unbound since the job was queued
            return self._seat(job, seat, "failed", detail="no longer a seat of this gateway")
        old_version, board, old_boot = link.firmware, link.board, link.boot
        if not link.online or board is None or old_version is None:
            return self._seat(job, seat, "failed", board=board, detail=(
                f"seat offline ({link.why}): nothing was touched"))
        if takes_image(link.board_name):  # known only since the job was queued
            return self._seat(job, seat, "failed", board=board, from_version=old_version,
                              detail=f"{image_only([seat])} (nothing was touched)")  # fmt: skip
        if old_version == job.version:
            return self._seat(job, seat, "done", board=board, from_version=old_version,
                              detail=f"runs {old_version} already")  # fmt: skip
        if link.view is not None and link.view.state in _BUSY:
            self._seat(job, seat, "queued", board=board, from_version=old_version,
                       detail=f"its agent is on a call: waiting up to "
                              f"{job.command.idle_wait_s:g} s for it to end")  # fmt: skip
        if not await self._idle(link, job.command.idle_wait_s):
            return self._seat(job, seat, "skipped", board=board, from_version=old_version,
                              detail=f"the agent stayed on a call for "
                                     f"{job.command.idle_wait_s:g} s")  # fmt: skip
        backup_path = self.backups / f"{seat}-{board}.json"
        kept: list[FileSet] = []

        def keep(fileset: FileSet) -> None:  # in the worker thread, before any write
            try:
                self.backups.mkdir(parents=True, exist_ok=True)
                save_bundle(backup_path, bundle_document([fileset], version=fileset.version))
                self._mark(backup_path, job, seat, old_boot=old_boot, old_version=old_version,
                           hello_by=None)  # fmt: skip
            except OSError as exc:  # no backup, no update
                raise FlashError(f"cannot keep the running firmware in {backup_path}: "
                                 f"{exc.strerror}") from None  # fmt: skip
            kept.append(fileset)

        def progress(text: str, done: int, total: int) -> None:
            stage: UpdateStage = "reading_back" if not kept else "writing"
            self._seat(job, seat, stage, board=board, from_version=old_version,
                       written=done, total=total, detail=text)  # fmt: skip

        self._seat(job, seat, "reading_back", board=board, from_version=old_version)
        loop = asyncio.get_running_loop()
        try:
            async with link.held(_HELD_WHY):
                await asyncio.to_thread(
                    replace_firmware, link.url, uid=board, version=old_version,
                    choose=job.firmware.for_kind, keep=keep,
                    progress=_Progress(progress, loop))  # fmt: skip
        except UpdateError as exc:
            if not exc.result.changed:  # restarted into the firmware it had
                self._unmark(backup_path)
                return self._seat(job, seat, "failed", board=board, from_version=old_version,
                                  detail=f"{exc} (nothing was written)")  # fmt: skip
            reason = f"writing failed: {exc}"
        except FlashError as exc:  # no REPL: nothing was read or written
            return self._seat(job, seat, "failed", board=board, from_version=old_version,
                              detail=str(exc))  # fmt: skip
        except TimeoutError:
            return self._seat(job, seat, "failed", board=board, from_version=old_version,
                              detail="the seat's link did not let go of the port")  # fmt: skip
        else:
            self._mark(backup_path, job, seat, old_boot=old_boot, old_version=old_version,
                       hello_by=time.time() + job.command.hello_deadline_s)  # fmt: skip
            self._seat(job, seat, "waiting_hello", board=board, from_version=old_version,
                       detail=f"reset; waiting up to {job.command.hello_deadline_s:g} s for "
                              "the new firmware's hello")  # fmt: skip
            heard = await self._hello(link, job.version, old_boot, job.command.hello_deadline_s)
            if heard is None:
                self._unmark(backup_path)
                return self._seat(job, seat, "done", board=board, from_version=old_version,
                                  detail=f"runs {job.version} (backup of {old_version} in "
                                         f"{backup_path.name})")  # fmt: skip
            reason = heard
        return await self._roll_back(job, seat, link, kept[0], reason, backup_path)

    async def _roll_back(self, job: _Job, seat: str, link: SeatLink, backup: FileSet,
                         reason: str, backup_path: Path) -> UpdateStage:  # fmt: skip
        board = link.board
        log.warning("seat %s: %s; rolling back to %s", seat, reason, backup.version)
        self._seat(job, seat, "rolling_back", board=board, from_version=backup.version,
                   detail=reason)  # fmt: skip
        boot = link.boot
        try:
            async with link.held(_HELD_WHY):
                await asyncio.to_thread(restore_firmware, link.url, backup=backup)
        except (FlashError, TimeoutError) as exc:
            self._unmark(backup_path)
            return self._seat(job, seat, "failed", board=board, from_version=backup.version,
                              detail=f"{reason}; the roll-back failed too: {exc}. Flash it "
                                     f"with: seatlink flash --bundle {backup_path} "
                                     f"{link.url}")  # fmt: skip
        # the kept version is known to work: a short deadline for a new release (a quick
        # roll-back) must not fail a seat whose old firmware is merely slow to come up
        deadline = max(job.command.hello_deadline_s, self.ROLLBACK_HELLO_S)
        heard = await self._hello(link, backup.version, boot, deadline)
        self._unmark(backup_path)
        if heard is not None:
            return self._seat(job, seat, "failed", board=board, from_version=backup.version,
                              detail=f"{reason}; rolled back, but then {heard}")  # fmt: skip
        return self._seat(job, seat, "rolled_back", board=board, from_version=backup.version,
                          detail=f"{reason}; runs {backup.version} again")  # fmt: skip

    async def _idle(self, link: SeatLink, wait_s: float) -> bool:
        end = time.monotonic() + wait_s
        while link.view is not None and link.view.state in _BUSY:
            if time.monotonic() >= end:
                return False
            await asyncio.sleep(self.POLL_S * 10)
        return True

    async def _hello(self, link: SeatLink, version: str, old_boot: int | None,
                     deadline_s: float) -> str | None:  # fmt: skip
        """None once the seat is online on a new boot of `version`; else what went wrong."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if link.online and link.boot != old_boot and link.firmware == version:
                return None
            await asyncio.sleep(self.POLL_S)
        if link.boot != old_boot and link.firmware not in (None, version):
            return f"the board came back on {link.firmware}, not {version}"
        return f"no hello from {version} within {deadline_s:g} s"

    # --- a gateway stopped mid-update -------------------------------------------------------

    def _marker(self, backup_path: Path) -> Path:
        return backup_path.with_name(backup_path.stem + ".pending.json")

    def _mark(self, backup_path: Path, job: _Job, seat: str, *, old_boot: int | None,
              old_version: str, hello_by: float | None) -> None:  # fmt: skip
        doc = {"job": job.command.id, "seat": seat, "to_version": job.version,
               "from_version": old_version, "old_boot": old_boot, "hello_by": hello_by,
               "backup": backup_path.name}  # fmt: skip
        tmp = self._marker(backup_path).with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        tmp.replace(self._marker(backup_path))

    def _unmark(self, backup_path: Path) -> None:
        try:
            self._marker(backup_path).unlink(missing_ok=True)
        except OSError as exc:  # no marker could be made there either
            log.warning("cannot remove %s: %s", self._marker(backup_path), exc.strerror)

    async def _recover(self) -> None:
        """Seats whose update a stopped gateway left unproven: done once their hello comes
        on the new version (by the time it was due), else rolled back."""
        if not self.backups.is_dir():
            return
        for marker in sorted(self.backups.glob("*.pending.json")):
            try:
                info = json.loads(marker.read_text())
                seat, version = str(info["seat"]), str(info["to_version"])
                backup_path = self.backups / str(info["backup"])
                backup = load_bundle(backup_path)
                kept = backup.for_kind(backup.kinds()[0])
                command = FirmwareUpdateCommand(v=1, id=str(info["job"]), seats=[seat],
                                                bundle={})  # fmt: skip
            except (OSError, ValueError, KeyError, TypeError, FlashError) as exc:
                log.error("firmware update marker %s unusable (%s): left for a person", marker,
                          exc)  # fmt: skip
                continue
            job = _Job(command, Firmware({}, source="recovery"), version, {seat: "waiting_hello"})
            hello_by = info.get("hello_by") or time.time() + self.ROLLBACK_HELLO_S
            await self._recover_seat(job, seat, kept, backup_path, info, float(hello_by))

    async def _recover_seat(self, job: _Job, seat: str, kept: FileSet, backup_path: Path,
                            info: dict[str, Any], hello_by: float) -> None:  # fmt: skip
        wait = max(hello_by - time.time(), 0.0) + self.RECOVER_GRACE_S
        end = time.monotonic() + wait
        link = self._link(seat)
        while link is None and time.monotonic() < end:  # bound once its board is heard
            await asyncio.sleep(self.POLL_S)
            link = self._link(seat)
        if link is None:
            log.error("seat %s: its update was unproven when the gateway stopped, and it is "
                      "not on this gateway now; marker left in %s", seat, self.backups)
            return
        self._seat(job, seat, "waiting_hello", board=link.board,
                   from_version=info.get("from_version"),
                   detail="the gateway restarted during the update: waiting for the new "
                          "firmware's hello")  # fmt: skip
        heard = await self._hello(link, job.version, info.get("old_boot"),
                                  max(end - time.monotonic(), 0.0))  # fmt: skip
        if heard is None:
            self._seat(job, seat, "done", board=link.board, from_version=kept.version,
                       detail=f"runs {job.version} (proven after a gateway restart)")
            self.counts["done"] += 1
        else:
            reason = f"{heard} (the gateway restarted during the update)"
            self.counts[await self._roll_back(job, seat, link, kept, reason, backup_path)] += 1
        self._unmark(backup_path)

    # --- helpers -----------------------------------------------------------------------------

    def _link(self, seat: str) -> SeatLink | None:
        return next((lk for lk in self.links if lk.seat == seat), None)

    def _board(self, seat: str) -> str | None:
        link = self._link(seat)
        return None if link is None else link.board

    def _board_name(self, seat: str) -> str | None:
        link = self._link(seat)
        return None if link is None else link.board_name

    def _job(self, job: _Job, status: str, *, detail: str = "") -> None:
        c = job.command
        self._announce(self.topics.topic("firmware_job", gateway=self.gateway), FirmwareJob(
            gateway=self.gateway, job=c.id, by=c.by, status=status,  # type: ignore[arg-type]
            to_version=job.version, seats=dict(job.stages), detail=detail,
            t=round(time.time(), 3)))  # fmt: skip

    def _seat(self, job: _Job, seat: str, stage: UpdateStage, *, board: str | None = None,
              from_version: str | None = None, written: int = 0, total: int = 0,
              detail: str = "") -> UpdateStage:  # fmt: skip
        changed = job.stages.get(seat) != stage
        job.stages[seat] = stage
        self._announce(self.topics.topic("seat_firmware", seat=seat), SeatFirmwareUpdate(
            seat=seat, gateway=self.gateway, job=job.command.id, board=board, stage=stage,
            from_version=from_version, to_version=job.version, written_bytes=written,
            total_bytes=total, detail=detail, t=round(time.time(), 3)))  # fmt: skip
        if changed and stage != "queued":
            self._job(job, "running")
        return stage
