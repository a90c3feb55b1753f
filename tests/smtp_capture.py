"""A real SMTP server for Conveyor's tests (aiosmtpd): writes each message it
accepts as NNN.eml in FOLDER and prints the port it listens on.

usage: smtp_capture.py FOLDER [PORT]   (PORT 0 or absent: any free port)
"""
import asyncio
import os
import sys

from aiosmtpd.smtp import SMTP


class Capture:
    def __init__(self, folder):
        self.folder = folder
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        path = os.path.join(self.folder, f"{self.count:03d}.eml")
        with open(path + ".tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        # Renamed whole, so a reader never sees half a message.
        os.rename(path + ".tmp", path)
        return "250 Message accepted for delivery"


async def main():
    folder = sys.argv[1]
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    os.makedirs(folder, exist_ok=True)
    handler = Capture(folder)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler), "127.0.0.1", port)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
