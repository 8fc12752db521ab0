"""qmail-send: schedule deliveries of queued messages, retry, bounce (qmail-send(8)).

Synopsis: qmail-send   (started by qmail-start, as qmails in root mode)

Works in ROOT/queue.  qmail-todo (a separate process, the ext-todo design) turns each new
envelope into info/S/N, local/S/N and remote/S/N and then says "D<mask>N"; qmail-send
keeps one schedule per channel (local, remote) ordered by next attempt, hands each
recipient not yet marked done to qmail-lspawn or qmail-rspawn, marks it done (a D over
its T) on success or permanent failure, appends failures to bounce/N, and once every
recipient is done sends the bounce and has qmail-clean remove the message.  Deferred
recipients are retried on qmail's schedule (qmail/queue/retry_schedule.py); after
queuelifetime a deferral is final.  On start, info/ is scanned once; after that no
event scans the queue.

Descriptors (qmail-start sets them up): 0 the log (qmail-log(5) lines), 1/2 to/from
qmail-lspawn, 3/4 to/from qmail-rspawn, 5/6 to/from qmail-clean, 7/8 to/from qmail-todo.

Signals: SIGALRM retries every deferred message now; SIGHUP re-reads virtualdomains
and concurrencylocal/remote (and has qmail-todo re-read locals, virtualdomains,
percenthack and envnoathost); SIGTERM starts no new delivery, waits for those running,
and exits 0.

Control files: queuelifetime, concurrencylocal, concurrencyremote, bouncefrom,
bouncehost, doublebouncehost, doublebounceto, virtualdomains (and, through qmail-todo,
locals, percenthack, envnoathost).  Environment: QMAIL_ROOT, QMAILQUEUE (for bounces).

Exit codes: 0 after SIGTERM; 111 when it cannot start (the alert says why).
"""

import fcntl
import heapq
import os
import select
import signal
import sys
import time
from dataclasses import dataclass, field

from qmail.config import control, install_root
from qmail.queue import bounce, qmail_clean, queue_client, queue_layout, retry_schedule, routing, send_log, spawn_protocol
from ucspi.runtime import durable, self_pipe

CHANNELS = 2
LOG = 0
CHAN_OUT = (1, 3)
CHAN_IN = (2, 4)
CLEAN_OUT, CLEAN_IN = 5, 6
TODO_OUT, TODO_IN = 7, 8
CHAN_DIRS = ("local", "remote")

SLEEP_FOREVER = 86400
SLEEP_CLEANUP = 76431
SLEEP_SYSFAIL = 123
OSSIFIED = 129600
REPORTMAX = 10000
DYING_TEXT = b"I'm not going to try again; this message has been in the queue too long.\n"
PASS_BATCH = 64  # recipients started per channel per loop turn


@dataclass
class Job:
    """One pass over one message's recipients of one channel."""
    id: int
    channel: int
    retry: int
    sender: bytes
    dying: bool
    refs: int = 1
    numtodo: int = 0
    hiteof: bool = False


@dataclass
class Delivery:
    job: Job
    delid: int
    mpos: int
    recip: bytes


@dataclass
class Pass:
    id: int
    job: Job
    records: list = field(default_factory=list)  # (position, record) of the channel file
    index: int = 0


@dataclass
class Settings:
    lifetime: int
    concurrency: list
    bouncefrom: bytes
    bouncehost: bytes
    doublebounceto: bytes
    routes: routing.Routes


def read_settings(root: str) -> Settings:
    """getcontrols (ControlTrouble when something cannot be read)."""
    me = control.read_line(root, "me")

    def line(name, fallback):
        # control_rldef: the file, else me (for "me" defaults), else the literal default
        # ("bouncehost" when even control/me is missing, as qmail-send does)
        value = control.read_line(root, name)
        if value is None:
            value = (me if me is not None else name) if fallback == "me" else fallback
        return value

    doublebounceto = line("doublebounceto", "postmaster") + "@" + line("doublebouncehost", "me")
    return Settings(
        lifetime=control.int_or_default(root, "queuelifetime"),
        concurrency=[control.int_or_default(root, "concurrencylocal"),
                     control.int_or_default(root, "concurrencyremote")],
        bouncefrom=line("bouncefrom", "MAILER-DAEMON").encode("latin-1"),
        bouncehost=line("bouncehost", "me").encode("latin-1"),
        doublebounceto=doublebounceto.encode("latin-1"),
        routes=routing.Routes.from_lists(
            line("envnoathost", "me"), [], [], control.read_lines(root, "virtualdomains") or []))


def messid(num: int) -> bytes:
    """The message's name relative to queue/mess, as the spawn programs expect it."""
    return b"%d/%d" % (num % queue_layout.SPLIT, num)


def get_info(num: int) -> tuple[bytes, int] | None:
    """(sender, birth) from info/S/N, or None when it cannot be read."""
    path = queue_layout.info("", num)
    try:
        with open(path, "rb") as f:
            birth = int(os.fstat(f.fileno()).st_mtime)
            data = f.read()
    except OSError:
        return None
    end = data.find(b"\0")
    if end < 0 or data[:1] != b"F":
        return None
    return data[1:end], birth


def _exists(path: str) -> bool | None:
    """True, False, or None when stat fails for another reason than absence."""
    try:
        os.stat(path)
        return True
    except FileNotFoundError:
        return False
    except OSError:
        return None


class Send:
    def __init__(self, root: str, settings: Settings, spawn_limits: list):
        self.root = root
        self.s = settings
        self.spawn_limits = spawn_limits
        self.concurrency = [min(settings.concurrency[c], spawn_limits[c]) for c in range(CHANNELS)]
        self.used = [0, 0]
        self.slots: list[list] = [[None] * self.concurrency[c] for c in range(CHANNELS)]
        self.outbuf = [bytearray(), bytearray()]
        self.readers = [spawn_protocol.ReportReader(REPORTMAX) for _ in range(CHANNELS)]
        self.alive = [True, True]
        self.todo_alive = True
        self.todo_buf = b""
        self.pqchan: list[list] = [[], []]
        self.pqdone: list = []
        self.pqfail: list = []
        self.passes: list = [None, None]
        self.jobs_open = 0
        self.masterdelid = 1
        self.exitasap = False
        self.runasap = False
        self.readasap = False
        self.recent = int(time.time())
        self.cleanup_time = self.recent
        self.cleanup_iter = None

    # --- logging -----------------------------------------------------------------
    def log(self, line: bytes) -> None:
        send_log.write(LOG, line)

    def warn(self, text: str) -> None:
        self.log(send_log.warning(text))

    def status(self) -> None:
        self.log(send_log.status(tuple(self.used), tuple(self.concurrency), self.exitasap))

    # --- qmail-clean -------------------------------------------------------------
    def clean(self, request: str) -> None:
        answer = qmail_clean.request(CLEAN_OUT, CLEAN_IN, request.encode())
        if not answer:
            self.log(send_log.alert("oh no! lost qmail-clean connection! dying..."))
            self.exitasap = True
        elif answer != b"+":
            self.warn(f"qmail-clean unable to clean up {request}")

    # --- the schedules -----------------------------------------------------------
    def pqadd(self, num: int) -> None:
        """Schedule a message found in info/ at start."""
        state = _exists(queue_layout.info("", num))
        if state is False:
            return
        flags = []
        if state is not None:
            state = _exists(queue_layout.todo("", num))
            if state is True:
                return  # qmail-todo has not finished it; it will say D
            if state is False:
                for c in range(CHANNELS):
                    path = queue_layout.path("", CHAN_DIRS[c], num)
                    try:
                        flags.append(int(os.stat(path).st_mtime))
                    except FileNotFoundError:
                        flags.append(None)
                    except OSError:
                        state = None
                        break
        if state is None:
            self.warn(f"unable to stat {queue_layout.info('', num)}; will try again later")
            heapq.heappush(self.pqfail, (int(time.time()) + SLEEP_SYSFAIL, num))
            return
        for c, dt in enumerate(flags):
            if dt is not None:
                heapq.heappush(self.pqchan[c], (dt, num))
        if all(dt is None for dt in flags):
            heapq.heappush(self.pqdone, (int(time.time()), num))

    def pqstart(self) -> None:
        for num in queue_layout.numbers("", "info"):
            self.pqadd(num)

    def pqfinish(self) -> None:
        """Remember each channel's next attempt in the channel file's mtime."""
        for c in range(CHANNELS):
            for dt, num in self.pqchan[c]:
                path = queue_layout.path("", CHAN_DIRS[c], num)
                try:
                    os.utime(path, (dt, dt))
                except OSError:
                    self.warn(f"unable to utime {path}; message will be retried too soon")

    def pqrun(self) -> None:
        for c in range(CHANNELS):
            self.pqchan[c] = [(self.recent, num) for _, num in self.pqchan[c]]
            heapq.heapify(self.pqchan[c])

    # --- jobs --------------------------------------------------------------------
    def job_avail(self) -> bool:
        return self.jobs_open < sum(self.concurrency)

    def job_close(self, job: Job) -> None:
        job.refs -= 1
        if job.refs > 0:
            return
        self.jobs_open -= 1
        dt = job.retry
        if job.hiteof and not job.numtodo:
            path = queue_layout.path("", CHAN_DIRS[job.channel], job.id)
            try:
                os.unlink(path)
            except OSError:
                self.warn(f"unable to unlink {path}; will try again later")
                dt = int(time.time()) + SLEEP_SYSFAIL
            else:
                for c in range(CHANNELS):
                    if c == job.channel:
                        continue
                    other = queue_layout.path("", CHAN_DIRS[c], job.id)
                    state = _exists(other)
                    if state:
                        return  # more channels going
                    if state is None:
                        self.warn(f"unable to stat {other}")
                        break
                heapq.heappush(self.pqdone, (int(time.time()), job.id))
                return
        heapq.heappush(self.pqchan[job.channel], (dt, job.id))

    # --- bounces -----------------------------------------------------------------
    def add_bounce(self, num: int, recip: bytes, report: bytes) -> None:
        stripped = self.s.routes.strip_prepend(recip.decode("latin-1")).encode("latin-1")
        text = bounce.paragraph(stripped, report)
        path = queue_layout.bounce("", num)
        for _ in range(360):  # qmail waits for the disk forever; we give it an hour
            try:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    durable.write_all(fd, text)
                finally:
                    os.close(fd)
                return
            except OSError:
                self.log(send_log.alert("unable to append to bounce message; HELP! sleeping..."))
                time.sleep(10)

    def inject_bounce(self, num: int) -> bool:
        info = get_info(num)
        if info is None:
            return False
        sender = bounce.unverp(info[0])
        path = queue_layout.bounce("", num)
        state = _exists(path)
        if state is False:
            return True
        if state is None:
            self.warn(f"unable to stat {path}")
            return False
        target = bounce.bounce_recipient_sender(sender, self.s.doublebounceto)
        if target is None:
            self.log(send_log.triple_bounce(path))
        else:
            try:
                with open(path, "rb") as f:
                    paragraphs = f.read()
                with open(queue_layout.mess("", num), "rb") as f:
                    message = f.read()
            except OSError:
                self.warn("trouble injecting bounce message, will try later")
                return False
            text = bounce.compose(time.time(), self.s.bouncefrom, self.s.bouncehost, sender,
                                  target[1], paragraphs, message)
            queue = queue_client.Queue(self.root)
            if queue.pid < 0:
                queue.close()
                self.warn("unable to start qmail-queue, will try later")
                return False
            qp = queue.pid
            queue.put(text)
            queue.from_(target[0])
            queue.to(target[1])
            if not queue.close().ok:
                self.warn("trouble injecting bounce message, will try later")
                return False
            self.log(send_log.bounce_msg(num, qp))
        try:
            os.unlink(path)
        except OSError:
            self.warn(f"unable to unlink {path}")
            return False
        return True

    def messdone(self, num: int) -> None:
        def fail():
            heapq.heappush(self.pqdone, (int(time.time()) + SLEEP_SYSFAIL, num))

        for path in [queue_layout.path("", d, num) for d in CHAN_DIRS] + [queue_layout.todo("", num)]:
            state = _exists(path)
            if state:
                return  # still work to do elsewhere
            if state is None:
                self.warn(f"unable to stat {path}; will try again later")
                return fail()
        info_path = queue_layout.info("", num)
        state = _exists(info_path)
        if state is False:
            return
        if state is None:
            self.warn(f"unable to stat {info_path}; will try again later")
            return fail()
        if not self.inject_bounce(num):
            return fail()
        self.log(send_log.end_msg(num))
        try:
            os.unlink(info_path)
        except OSError:
            self.warn(f"unable to unlink {info_path}; will try again later")
            return fail()
        self.clean(f"foop/{num}")

    # --- deliveries --------------------------------------------------------------
    def del_avail(self, c: int) -> bool:
        return self.alive[c] and self.used[c] < self.concurrency[c]

    def del_start(self, job: Job, mpos: int, recip: bytes) -> None:
        c = job.channel
        slot = next(i for i in range(self.concurrency[c]) if self.slots[c][i] is None)
        job.refs += 1
        delivery = Delivery(job, self.masterdelid, mpos, recip)
        self.masterdelid += 1
        self.slots[c][slot] = delivery
        self.used[c] += 1
        sender = _verp_sender(job.sender, recip)
        self.outbuf[c] += spawn_protocol.encode_command(slot, messid(job.id), sender, recip)
        self.log(send_log.starting_delivery(delivery.delid, job.id, c, recip))
        self.status()

    def mark_done(self, c: int, num: int, pos: int) -> None:
        path = queue_layout.path("", CHAN_DIRS[c], num)
        try:
            fd = os.open(path, os.O_WRONLY)
            try:
                if os.pwrite(fd, b"D", pos) == 1:
                    return
            finally:
                os.close(fd)
        except OSError:
            pass
        self.warn(f"trouble marking {path}; message will be delivered twice!")

    def report(self, c: int, delnum: int, text: bytes) -> None:
        slots = self.slots[c]
        if delnum >= len(slots) or slots[delnum] is None:
            self.warn("internal error: delivery report out of range")
            return
        d = slots[delnum]
        if text[:1] == b"Z" and d.job.dying:
            text = b"D" + text[1:] + DYING_TEXT
        kind = text[:1]
        if kind == b"K":
            self.log(send_log.delivery_result(d.delid, "success", text[1:]))
            self.mark_done(c, d.job.id, d.mpos)
            d.job.numtodo -= 1
        elif kind == b"Z":
            self.log(send_log.delivery_result(d.delid, "deferral", text[1:]))
        elif kind == b"D":
            self.log(send_log.delivery_result(d.delid, "failure", text[1:]))
            self.add_bounce(d.job.id, d.recip, text[1:])
            self.mark_done(c, d.job.id, d.mpos)
            d.job.numtodo -= 1
        else:
            self.log(send_log.report_mangled(d.delid))
        self.job_close(d.job)
        slots[delnum] = None
        self.used[c] -= 1
        self.status()

    def spawn_died(self, c: int) -> None:
        self.log(send_log.alert("oh no! lost spawn connection! dying..."))
        self.alive[c] = False
        self.exitasap = True

    # --- passes ------------------------------------------------------------------
    def pass_start(self, c: int) -> None:
        dt, num = heapq.heappop(self.pqchan[c])
        path = queue_layout.path("", CHAN_DIRS[c], num)
        try:
            with open(path, "rb") as f:
                data = f.read()
            info = get_info(num)
        except OSError:
            info = None
        if info is None:
            self.warn(f"trouble opening {path}; will try again later")
            heapq.heappush(self.pqchan[c], (self.recent + SLEEP_SYSFAIL, num))
            return
        sender, birth = info
        job = Job(num, c, retry_schedule.next_retry(birth, self.recent, c), sender,
                  retry_schedule.dying(birth, self.recent, self.s.lifetime))
        self.jobs_open += 1
        records = []
        pos = 0
        for record in data.split(b"\0")[:-1]:  # an unterminated tail is the end
            records.append((pos, record))
            pos += len(record) + 1
        self.passes[c] = Pass(num, job, records)

    def pass_step(self, c: int) -> None:
        p = self.passes[c]
        if p.index >= len(p.records):
            p.job.hiteof = True
            self.job_close(p.job)
            self.passes[c] = None
            return
        pos, record = p.records[p.index]
        p.index += 1
        if record[:1] == b"T":
            p.job.numtodo += 1
            self.del_start(p.job, pos, record[1:])
        elif record[:1] != b"D":
            self.warn(f"unknown record type in {queue_layout.path('', CHAN_DIRS[c], p.id)}!")
            self.job_close(p.job)
            self.passes[c] = None

    def pass_do(self) -> None:
        if not self.exitasap:
            for c in range(CHANNELS):
                for _ in range(PASS_BATCH):
                    if self.passes[c] is None:
                        if not self.job_avail() or not self.pqchan[c]:
                            break
                        if self.pqchan[c][0][0] > self.recent:
                            break
                        self.pass_start(c)
                        continue
                    if not self.del_avail(c):
                        break
                    self.pass_step(c)
        if self.pqfail and self.pqfail[0][0] <= self.recent:
            self.pqadd(heapq.heappop(self.pqfail)[1])
        if self.pqdone and self.pqdone[0][0] <= self.recent:
            self.messdone(heapq.heappop(self.pqdone)[1])

    def wakeup(self) -> int:
        wake = self.recent + SLEEP_FOREVER
        if not self.exitasap:
            for c in range(CHANNELS):
                if self.passes[c] is not None and self.del_avail(c):
                    return self.recent
            if self.job_avail():
                for c in range(CHANNELS):
                    if self.passes[c] is None and self.pqchan[c]:
                        wake = min(wake, self.pqchan[c][0][0])
        for heap in (self.pqfail, self.pqdone):
            if heap:
                wake = min(wake, heap[0][0])
        if self.cleanup_iter is not None:
            return self.recent
        return min(wake, self.cleanup_time)

    # --- cleanup of debris -------------------------------------------------------
    def cleanup_do(self) -> None:
        if self.cleanup_iter is None:
            if self.recent < self.cleanup_time:
                return
            self.cleanup_iter = queue_layout.numbers("", "mess")
        for _ in range(PASS_BATCH):
            num = next(self.cleanup_iter, None)
            if num is None:
                self.cleanup_iter = None
                self.cleanup_time = self.recent + SLEEP_CLEANUP
                return
            try:
                st = os.stat(queue_layout.mess("", num))
            except OSError:
                continue
            if self.recent <= st.st_atime + OSSIFIED:
                continue
            if _exists(queue_layout.info("", num)) is not False:
                continue
            if _exists(queue_layout.todo("", num)) is not False:
                continue
            self.clean(f"foop/{num}")

    # --- qmail-todo --------------------------------------------------------------
    def todo_tell(self, command: bytes) -> None:
        if not self.todo_alive:
            return
        try:
            os.write(TODO_OUT, command)
        except OSError:
            pass

    def todo_read(self) -> None:
        try:
            data = os.read(TODO_IN, 65536)
        except InterruptedError:
            return
        except OSError:
            data = b""
        if not data:
            self.todo_alive = False
            if not self.exitasap:
                self.log(send_log.alert("oh no! lost qmail-todo connection! dying..."))
                self.exitasap = True
            return
        *records, self.todo_buf = (self.todo_buf + data).split(b"\0")
        now = int(time.time())
        for record in records:
            if record[:1] == b"L":
                self.log(record[1:])
            elif record[:1] == b"D" and record[1:3].isdigit():
                mask, num = int(record[1:2]), int(record[2:])
                for c in range(CHANNELS):
                    if mask & (1 << c):
                        heapq.heappush(self.pqchan[c], (now, num))
                if not mask:
                    heapq.heappush(self.pqdone, (now, num))

    # --- signals and controls ----------------------------------------------------
    def reread(self) -> None:
        try:
            fresh = read_settings(self.root)
        except control.ControlTrouble:
            self.log(send_log.alert("unable to reread controls"))
            return
        self.s = fresh
        self.concurrency = [min(fresh.concurrency[c], self.spawn_limits[c]) for c in range(CHANNELS)]
        for c in range(CHANNELS):
            if len(self.slots[c]) < self.concurrency[c]:
                self.slots[c] += [None] * (self.concurrency[c] - len(self.slots[c]))
        self.todo_tell(b"H")

    def take_signals(self) -> None:
        while _pending_signals:
            signum = _pending_signals.pop()
            if signum == signal.SIGTERM:
                self.exitasap = True
            elif signum == signal.SIGALRM:
                self.runasap = True
            elif signum == signal.SIGHUP:
                self.readasap = True

    def can_exit(self) -> bool:
        return not any(self.alive[c] and self.used[c] for c in range(CHANNELS))

    # --- the loop ----------------------------------------------------------------
    def run(self, wake_fd: int) -> None:
        self.pqstart()
        self.status()
        self.todo_tell(b"S")
        while True:
            self.take_signals()
            if self.exitasap and self.can_exit():
                break
            self.recent = int(time.time())
            if self.runasap:
                self.runasap = False
                self.pqrun()
            if self.readasap:
                self.readasap = False
                self.reread()
            rfds = [wake_fd] + [CHAN_IN[c] for c in range(CHANNELS) if self.alive[c]]
            if self.todo_alive:
                rfds.append(TODO_IN)
            wfds = [CHAN_OUT[c] for c in range(CHANNELS) if self.alive[c] and self.outbuf[c]]
            wake = self.wakeup()
            timeout = 0 if wake <= self.recent else wake - self.recent + 1
            try:
                readable, writable, _ = select.select(rfds, wfds, [], timeout)
            except InterruptedError:
                continue
            self.recent = int(time.time())
            if wake_fd in readable:
                self_pipe.drain(wake_fd)
            for c in range(CHANNELS):
                if CHAN_OUT[c] in writable:
                    self.comm_do(c)
                if self.alive[c] and CHAN_IN[c] in readable:
                    self.del_do(c)
            if TODO_IN in readable:
                self.todo_read()
            self.pass_do()
            self.cleanup_do()
        self.pqfinish()
        self.todo_tell(b"X")
        self.log(b"status: exiting\n")

    def comm_do(self, c: int) -> None:
        try:
            written = os.write(CHAN_OUT[c], self.outbuf[c])
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.spawn_died(c)
            return
        del self.outbuf[c][:written]

    def del_do(self, c: int) -> None:
        try:
            data = os.read(CHAN_IN[c], 2048)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.spawn_died(c)
            return
        for delnum, text in self.readers[c].feed(data):
            self.report(c, delnum, text)


def _verp_sender(sender: bytes, recip: bytes) -> bytes:
    """senderadd: a sender prefix-@host-@[] becomes prefix-box=domain@host for recip."""
    if sender.endswith(b"-@[]"):
        j = sender.rfind(b"@", 0, len(sender) - 4)
        k = recip.rfind(b"@")
        if k >= 0 and j >= 0 and j + 5 <= len(sender):
            return (sender[:j] + recip[:k] + b"=" + recip[k + 1:] + b"@"
                    + sender[j + 1:len(sender) - 4])
    return sender


_pending_signals: set = set()


def _note_signal(signum, frame) -> None:
    _pending_signals.add(signum)


def _die(text: str) -> int:
    send_log.write(LOG, send_log.alert(text))
    return 111


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    root = os.path.abspath(install_root.root())
    try:
        os.chdir(root)
    except OSError:
        return _die("cannot start: unable to switch to home directory")
    try:
        settings = read_settings(root)
    except control.ControlTrouble:
        return _die("cannot start: unable to read controls")
    try:
        os.chdir("queue")
    except OSError:
        return _die("cannot start: unable to switch to queue directory")
    for signum in (signal.SIGTERM, signal.SIGALRM, signal.SIGHUP):
        signal.signal(signum, _note_signal)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.umask(0o077)
    try:
        mutex = os.open("lock/sendmutex", os.O_WRONLY)
    except OSError:
        return _die("cannot start: unable to open mutex")
    try:
        fcntl.flock(mutex, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return _die("cannot start: qmail-send is already running")
    limits = []
    for c in range(CHANNELS):
        while True:
            try:
                byte = os.read(CHAN_IN[c], 1)
                break
            except InterruptedError:
                continue
            except OSError:
                byte = b""
                break
        if not byte:
            return _die("cannot start: hath the daemon spawn no fire?")
        limits.append(byte[0])
    send = Send(root, settings, limits)
    for c in range(CHANNELS):
        try:
            os.set_blocking(CHAN_OUT[c], False)
        except OSError:
            send.spawn_died(c)
    wake_r, _ = self_pipe.open_wakeup()

    send.run(wake_r)
    return 0
