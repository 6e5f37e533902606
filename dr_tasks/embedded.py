"""An S3 server on 127.0.0.1 for `dr.drill` when no bucket is configured: moto's, in-process."""

from __future__ import annotations

import logging
from types import TracebackType

from .errors import DrError

# Any fixed pair works: the embedded server checks no signatures.
ACCESS_KEY = "dr-drill"
SECRET_KEY = "dr-drill-secret"


class EmbeddedS3:
    """`with EmbeddedS3() as url:` runs moto's S3 server on a free 127.0.0.1 port."""

    def __init__(self) -> None:
        try:
            from moto.server import ThreadedMotoServer
        except ImportError:
            raise DrError(
                "the embedded S3 server needs moto, which is not installed",
                "pip install 'dr-tasks[embedded]' (or configure dr.bucket to drill against a real bucket)",
            ) from None
        # werkzeug logs every request on stderr; a drill is not a server log.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.url = ""

    def __enter__(self) -> str:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        return self.url

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.stop()
