"""A real SMTP server for Conveyor's tests and demo (aiosmtpd): writes each
message it accepts as NNN.eml in FOLDER and prints the port it listens on.

usage: smtp_capture.py FOLDER [PORT] [--kill-on N --pid-file FILE] [--auth USER:PASSWORD]
                       [--starttls CA_PEM]

PORT 0 or absent: any free port. With --kill-on N, the Nth message is
written, then the process whose pid FILE holds is SIGKILLed before the
"250" reply goes out: the client dies between the server taking the
message and the client learning it did (the "killed between send and
mark" case). With --auth, only a client that logs in with USER:PASSWORD
(AUTH PLAIN or LOGIN) may send; a wrong password gets 535. With --starttls,
the server requires STARTTLS with a certificate for 127.0.0.1 issued by a
throwaway CA (trustme) whose certificate it writes to CA_PEM.
"""
import argparse
import asyncio
import os
import signal
import ssl
import time

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Capture:
    def __init__(self, folder, kill_on, pid_file):
        self.folder = folder
        self.count = 0
        self.kill_on = kill_on
        self.pid_file = pid_file

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        path = os.path.join(self.folder, f"{self.count:03d}.eml")
        with open(path + ".tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        # Renamed whole, so a reader never sees half a message.
        os.rename(path + ".tmp", path)
        if self.count == self.kill_on:
            os.kill(wait_for_pid(self.pid_file), signal.SIGKILL)
            await asyncio.sleep(0.2)
        return "250 Message accepted for delivery"


def wait_for_pid(pid_file, timeout=10.0):
    """The test writes the pid just after spawning the client: wait for it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(pid_file) as f:
                text = f.read().strip()
            if text:
                return int(text)
        except FileNotFoundError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"no pid in {pid_file}")
        time.sleep(0.02)


class Authenticator:
    def __init__(self, user, password):
        self.user = user.encode()
        self.password = password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == self.user
            and auth_data.password == self.password
        )
        # handled=False: aiosmtpd answers (235, or 535 on a wrong password).
        return AuthResult(success=ok, handled=False)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("folder")
    parser.add_argument("port", nargs="?", type=int, default=0)
    parser.add_argument("--kill-on", type=int, default=0)
    parser.add_argument("--pid-file")
    parser.add_argument("--auth")
    parser.add_argument("--starttls")
    args = parser.parse_args()
    os.makedirs(args.folder, exist_ok=True)
    handler = Capture(args.folder, args.kill_on, args.pid_file)
    loop = asyncio.get_running_loop()
    options = {}
    if args.auth:
        user, password = args.auth.split(":", 1)
        options.update(
            authenticator=Authenticator(user, password),
            auth_required=True,
            # Loopback tests have no certificate unless --starttls.
            auth_require_tls=bool(args.starttls),
        )
    if args.starttls:
        import trustme

        ca = trustme.CA()
        ca.cert_pem.write_to_path(args.starttls)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        options.update(tls_context=context, require_starttls=True)
    make = lambda: SMTP(handler, **options)
    server = await loop.create_server(make, "127.0.0.1", args.port)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
