"""A small DICOMweb client for a PACS such as Orthanc: find, retrieve and store studies.

- QIDO-RS: :meth:`DicomWebClient.search_studies` and :meth:`search_series` (JSON).
- WADO-RS: :meth:`DicomWebClient.retrieve` writes every instance of a study or series as
  a ``.dcm`` file into a folder and checks the count against what QIDO announced (a
  partial retrieve is an error, never a smaller scan).
- STOW-RS: :meth:`DicomWebClient.store` sends DICOM files (``multipart/related;
  type="application/dicom"``) and raises when the PACS refuses any of them.

Connection errors and 5xx answers are retried with exponential back-off
(``retries`` times, ``backoff_s`` x 2^attempt); 4xx answers are not. Credentials come
from :class:`PacsConfig`: a YAML/JSON file and/or the environment variables
``ODONTOSCAN_PACS_USER`` + ``ODONTOSCAN_PACS_PASSWORD`` (HTTP basic) or
``ODONTOSCAN_PACS_TOKEN`` (bearer), never from command-line flags. Messages and logs
name the PACS by its URL only and never carry credentials or patient attributes.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError, field_validator

from odontoscan.datasets.errors import (
    ConfigError,
    PacsAuthError,
    PacsError,
    PacsStoreError,
    PacsUnreachableError,
    PartialRetrieveError,
    StudyNotFoundError,
    describe_validation_error,
)

log = logging.getLogger(__name__)

ENV_URL = "ODONTOSCAN_PACS_URL"
ENV_USER = "ODONTOSCAN_PACS_USER"
ENV_PASSWORD = "ODONTOSCAN_PACS_PASSWORD"
ENV_TOKEN = "ODONTOSCAN_PACS_TOKEN"
DICOM_TYPE = "application/dicom"
NON_IMAGE_MODALITIES = {"SEG", "SR", "PR", "KO", "RTSTRUCT", "DOC", "OT"}

# DICOM JSON tags used here.
STUDY_UID = "0020000D"
SERIES_UID = "0020000E"
MODALITY = "00080060"
MODALITIES_IN_STUDY = "00080061"
STUDY_DATE = "00080020"
STUDY_INSTANCES = "00201208"
SERIES_INSTANCES = "00201209"
FAILED_SOP_SEQUENCE = "00081198"
FAILURE_REASON = "00081197"


class PacsAuth(BaseModel):
    """Credentials: HTTP basic (``user`` + ``password``) or a bearer ``token``.

    ``password_env`` / ``token_env`` name an environment variable that holds the secret,
    so a config file need not contain it.
    """

    model_config = ConfigDict(extra="forbid")

    user: str | None = None
    password: SecretStr | None = None
    password_env: str | None = None
    token: SecretStr | None = None
    token_env: str | None = None


class PacsConfig(BaseModel):
    """Where the PACS is and how to talk to it. ``url`` is the DICOMweb root
    (Orthanc: ``http://host:8042/dicom-web``); times are in seconds."""

    model_config = ConfigDict(extra="forbid")

    url: str
    auth: PacsAuth = PacsAuth()
    timeout_s: float = 120.0
    retries: int = 3
    backoff_s: float = 0.5

    @field_validator("url")
    @classmethod
    def _plain_http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL of the DICOMweb root, e.g. http://127.0.0.1:8042/dicom-web")
        if parts.username or parts.password:
            raise ValueError(f"must not hold credentials; set {ENV_USER}/{ENV_PASSWORD} or {ENV_TOKEN} instead")
        return url.rstrip("/")

    def display_url(self) -> str:
        """The URL as shown in messages and logs (no query string)."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}{parts.path}"


def load_pacs_config(
    url: str | None = None, config_file: str | Path | None = None, env: Mapping[str, str] | None = None
) -> PacsConfig:
    """The PACS configuration from a YAML/JSON file, the URL given and the environment.

    ``url`` (e.g. ``--pacs``) overrides the file's ``url``, then ``ODONTOSCAN_PACS_URL``
    is used. ``ODONTOSCAN_PACS_USER``/``_PASSWORD``/``_TOKEN`` override the file's auth.
    Raises ConfigError naming what is missing or wrong (never a secret's value).
    """
    env = os.environ if env is None else env
    data: dict = {}
    source = "PACS settings"
    if config_file is not None:
        path = Path(config_file)
        source = f"PACS config file '{path.name}'"
        if not path.is_file():
            raise ConfigError(f"PACS config file '{path}' does not exist.")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source} is not valid YAML/JSON (line {getattr(getattr(exc, 'problem_mark', None), 'line', '?')}).") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{source} must be a mapping with 'url' and optional 'auth'.")
    if url:
        data["url"] = url
    elif not data.get("url") and env.get(ENV_URL):
        data["url"] = env[ENV_URL]
    if not data.get("url"):
        raise ConfigError(f"No PACS URL: give --pacs URL, 'url' in --pacs-config or {ENV_URL}.")
    auth = dict(data.get("auth") or {})
    for key, var in (("user", ENV_USER), ("password", ENV_PASSWORD), ("token", ENV_TOKEN)):
        if env.get(var):
            auth[key] = env[var]
    for key in ("password", "token"):
        var = auth.pop(f"{key}_env", None)
        if var and not auth.get(key):
            if not env.get(var):
                raise ConfigError(f"{source}: auth.{key}_env names the environment variable '{var}', which is not set.")
            auth[key] = env[var]
    data["auth"] = auth
    try:
        config = PacsConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, "PACS settings", f"({source})")) from None
    if bool(config.auth.user) != bool(config.auth.password):
        raise ConfigError(f"PACS basic auth needs both a user and a password ({ENV_USER} and {ENV_PASSWORD}).")
    return config


@dataclass(frozen=True)
class PacsStudy:
    """One study found by QIDO: its UID, date (YYYYMMDD), modalities and instance count."""

    study_uid: str
    study_date: str | None
    modalities: tuple[str, ...]
    instances: int | None


@dataclass(frozen=True)
class PacsSeries:
    """One series of a study found by QIDO."""

    series_uid: str
    modality: str | None
    instances: int | None


class DicomWebClient:
    """QIDO-RS, WADO-RS and STOW-RS against one DICOMweb root. Use as a context manager."""

    def __init__(self, config: PacsConfig, *, transport: httpx.BaseTransport | None = None) -> None:
        self.config = config
        auth = config.auth
        headers = {}
        basic = None
        if auth.token is not None:
            headers["Authorization"] = f"Bearer {auth.token.get_secret_value()}"
        elif auth.user and auth.password is not None:
            basic = httpx.BasicAuth(auth.user, auth.password.get_secret_value())
        self._http = httpx.Client(base_url=config.url, auth=basic, headers=headers, timeout=config.timeout_s, transport=transport)

    def __enter__(self) -> DicomWebClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # --- QIDO-RS ------------------------------------------------------------------------

    def search_studies(
        self, *, modality: str | None = None, since: date | None = None, study_uid: str | None = None
    ) -> list[PacsStudy]:
        """Studies matching the filters (``since``: StudyDate on or after that day)."""
        params = {"includefield": f"{STUDY_INSTANCES},{MODALITIES_IN_STUDY}"}
        if modality:
            params["ModalitiesInStudy"] = modality
        if since:
            params["StudyDate"] = f"{since:%Y%m%d}-"
        if study_uid:
            params["StudyInstanceUID"] = study_uid
        answer = self._json("GET", "/studies", params=params, what="study search")
        return [
            PacsStudy(
                study_uid=_value(item, STUDY_UID),
                study_date=_value(item, STUDY_DATE),
                modalities=tuple(item.get(MODALITIES_IN_STUDY, {}).get("Value", [])),
                instances=_int(_value(item, STUDY_INSTANCES)),
            )
            for item in answer
            if _value(item, STUDY_UID)
        ]

    def search_series(self, study_uid: str) -> list[PacsSeries]:
        """The series of one study; raises StudyNotFoundError when it has none."""
        answer = self._json("GET", f"/studies/{study_uid}/series", what=f"series search of study {study_uid}",
                            params={"includefield": SERIES_INSTANCES}, missing=f"Study {study_uid}")
        series = [PacsSeries(_value(i, SERIES_UID), _value(i, MODALITY), _int(_value(i, SERIES_INSTANCES))) for i in answer if _value(i, SERIES_UID)]
        if not series:
            raise StudyNotFoundError(f"Study {study_uid} is not (or no longer) in the PACS at {self.config.display_url()}.")
        return series

    def image_series(self, study_uid: str, modality: str | None = None) -> PacsSeries:
        """The image series of a study to analyse: of ``modality`` when given (else any
        image modality), the one with the most instances."""
        candidates = [
            s for s in self.search_series(study_uid)
            if (s.modality == modality if modality else (s.modality or "") not in NON_IMAGE_MODALITIES)
        ]
        if not candidates:
            what = f"{modality} series" if modality else "image series"
            raise StudyNotFoundError(f"Study {study_uid} in the PACS holds no {what}.")
        return max(candidates, key=lambda s: s.instances or 0)

    # --- WADO-RS ------------------------------------------------------------------------

    def retrieve(self, study_uid: str, folder: str | Path, *, series_uid: str | None = None, expected: int | None = None) -> list[Path]:
        """Write every instance of the study (or of one of its series) into ``folder`` as
        ``NNNNN.dcm``; returns the files. Raises StudyNotFoundError for a study that is
        gone and PartialRetrieveError when the count differs from ``expected``."""
        path = f"/studies/{study_uid}" + (f"/series/{series_uid}" if series_uid else "")
        what = f"study {study_uid}" + (f" series {series_uid}" if series_uid else "")
        answer = self._request("GET", path, what=f"retrieve of {what}", missing=what.capitalize(),
                               headers={"Accept": f'multipart/related; type="{DICOM_TYPE}"'})
        parts = _multipart_parts(answer, what)
        if not parts:
            raise StudyNotFoundError(f"{what.capitalize()} is not (or no longer) in the PACS at {self.config.display_url()}.")
        if expected is not None and len(parts) != expected:
            raise PartialRetrieveError(
                f"Retrieve of {what} returned {len(parts)} of {expected} instances; the PACS may still be receiving it "
                "or lost some. Try again later; nothing was analysed."
            )
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        files = []
        for number, data in enumerate(parts, start=1):
            target = folder / f"{number:05d}.dcm"
            target.write_bytes(data)
            files.append(target)
        log.info("retrieved %d instances of %s from %s", len(files), what, self.config.display_url())
        return files

    # --- STOW-RS ------------------------------------------------------------------------

    def store(self, files: list[Path], *, study_uid: str | None = None) -> int:
        """Store DICOM ``files`` in the PACS; returns how many were stored. Raises
        PacsStoreError with the HTTP status and the PACS's failure reasons when it refuses any."""
        boundary = uuid.uuid4().hex
        body = b"".join(
            f"--{boundary}\r\nContent-Type: {DICOM_TYPE}\r\n\r\n".encode() + Path(f).read_bytes() + b"\r\n" for f in files
        ) + f"--{boundary}--\r\n".encode()
        content_type = f'multipart/related; type="{DICOM_TYPE}"; boundary={boundary}'
        path = f"/studies/{study_uid}" if study_uid else "/studies"
        answer = self._request("POST", path, what="store", content=body, check=False,
                               headers={"Content-Type": content_type, "Accept": "application/dicom+json"})
        details = _store_failures(answer)
        if answer.status_code >= 400 or details:
            reason = "; ".join(details) or _error_text(answer) or answer.reason_phrase
            raise PacsStoreError(
                f"The PACS at {self.config.display_url()} refused to store {len(files)} file(s) "
                f"(HTTP {answer.status_code}: {reason})."
            )
        log.info("stored %d file(s) in %s", len(files), self.config.display_url())
        return len(files)

    # --- Orthanc REST (beside DICOMweb) -------------------------------------------------

    def orthanc_root(self) -> str | None:
        """The Orthanc REST root when the PACS is Orthanc (``/system`` answers at the
        DICOMweb root's parent), else None."""
        root = self.config.url.rsplit("/", 1)[0]
        try:
            answer = self._http.get(f"{root}/system")
            system = answer.json() if answer.status_code == 200 else None
        except (httpx.TransportError, json.JSONDecodeError, UnicodeDecodeError):
            return None
        return root if isinstance(system, dict) and "ApiVersion" in system else None

    def orthanc_study_changes(self, root: str, since: int) -> tuple[dict[str, bool | None], int]:
        """Orthanc's change log after index ``since``: the latest state of each study it
        names (Orthanc study id -> True once stable, False while new, None when deleted)
        and the index of the last change read."""
        states: dict[str, bool | None] = {}
        kinds = {"NewStudy": False, "StableStudy": True, "Deleted": None}
        while True:
            page = self._request("GET", f"{root}/changes", what="change log", params={"since": since, "limit": 1000}).json()
            for change in page.get("Changes", []):
                if change.get("ResourceType") == "Study" and change.get("ChangeType") in kinds:
                    states[change["ID"]] = kinds[change["ChangeType"]]
            since = int(page.get("Last", since))
            if page.get("Done", True) or not page.get("Changes"):
                return states, since

    def orthanc_study_uid(self, root: str, study_id: str) -> str | None:
        """The StudyInstanceUID of an Orthanc study id, or None when the study is gone."""
        answer = self._request("GET", f"{root}/studies/{study_id}", what="study lookup", check=False)
        if answer.status_code == 404:
            return None
        if answer.status_code >= 400:
            raise PacsError(f"The PACS at {self.config.display_url()} refused the study lookup (HTTP {answer.status_code}).")
        return answer.json().get("MainDicomTags", {}).get("StudyInstanceUID")

    # --- HTTP ---------------------------------------------------------------------------

    def _json(self, method: str, path: str, *, what: str, missing: str | None = None, **kwargs) -> list[dict]:
        answer = self._request(method, path, what=what, missing=missing, headers={"Accept": "application/dicom+json"}, **kwargs)
        if answer.status_code == 204 or not answer.content.strip():
            return []
        try:
            data = answer.json()
        except json.JSONDecodeError:
            raise PacsError(f"The PACS at {self.config.display_url()} answered the {what} with something that is not DICOM JSON.") from None
        if not isinstance(data, list):
            raise PacsError(f"The PACS at {self.config.display_url()} answered the {what} with JSON that is not a list.")
        return data

    def _request(self, method: str, path: str, *, what: str, missing: str | None = None, check: bool = True, **kwargs) -> httpx.Response:
        """One request, retried on connection errors and 5xx; raises typed errors for
        refusals (401/403), missing resources (404) and other 4xx when ``check``."""
        where = self.config.display_url()
        attempts = self.config.retries + 1
        for attempt in range(attempts):
            try:
                answer = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if attempt + 1 == attempts:
                    raise PacsUnreachableError(
                        f"PACS unreachable: no answer from {where} to the {what} after {attempts} attempts "
                        f"({type(exc).__name__}). Check that the PACS is running and the URL is right; "
                        "re-run the command to retry."
                    ) from None
            else:
                if answer.status_code < 500 or attempt + 1 == attempts:
                    break
                log.warning("PACS %s answered HTTP %d to the %s; retrying", where, answer.status_code, what)
            time.sleep(self.config.backoff_s * 2**attempt)
        if answer.status_code in (401, 403):
            raise PacsAuthError(
                f"The PACS at {where} refused the credentials (HTTP {answer.status_code}) for the {what}; "
                f"check {ENV_USER}/{ENV_PASSWORD}, {ENV_TOKEN} or the auth of --pacs-config."
            )
        if not check:
            return answer
        if answer.status_code == 404 and missing:
            raise StudyNotFoundError(f"{missing} is not (or no longer) in the PACS at {where}.")
        if answer.status_code >= 500:
            raise PacsUnreachableError(f"PACS unreachable: {where} answered HTTP {answer.status_code} to the {what} after {attempts} attempts.")
        if answer.status_code >= 400:
            raise PacsError(f"The PACS at {where} refused the {what} (HTTP {answer.status_code}: {_error_text(answer) or answer.reason_phrase}).")
        return answer


# --- helpers ------------------------------------------------------------------------------


def _value(item: dict, tag: str):
    values = item.get(tag, {}).get("Value") or [None]
    return values[0]


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _multipart_parts(answer: httpx.Response, what: str) -> list[bytes]:
    """The ``application/dicom`` bodies of a multipart/related answer."""
    content_type = answer.headers.get("content-type", "")
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.lower().startswith("multipart/related") or not match:
        if not answer.content:
            return []
        raise PacsError(f"The PACS answered the retrieve of {what} with '{content_type.split(';')[0]}', not multipart/related DICOM.")
    delimiter = b"\r\n--" + match.group(1).encode()
    parts = []
    for chunk in (b"\r\n" + answer.content).split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, data = chunk.partition(b"\r\n\r\n")
        if DICOM_TYPE.encode() in head.lower() or b"content-type" not in head.lower():
            parts.append(data)
    return parts


def _store_failures(answer: httpx.Response) -> list[str]:
    """The failure reasons of a STOW-RS answer (FailedSOPSequence), as short strings."""
    try:
        data = answer.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return []
    if not isinstance(data, dict):
        return []
    failed = data.get(FAILED_SOP_SEQUENCE, {}).get("Value") or []
    return [f"failure reason 0x{int(_value(item, FAILURE_REASON) or 0):04X}" for item in failed if isinstance(item, dict)]


def _error_text(answer: httpx.Response) -> str:
    """A short reason from a PACS error body (Orthanc: JSON with Message/Details)."""
    try:
        data = answer.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return answer.text.strip()[:200]
    if isinstance(data, dict):
        return " - ".join(str(data[k]) for k in ("Message", "Details") if data.get(k))[:300]
    return ""


__all__ = [
    "PacsAuth",
    "PacsConfig",
    "PacsStudy",
    "PacsSeries",
    "DicomWebClient",
    "load_pacs_config",
    "ENV_URL",
    "ENV_USER",
    "ENV_PASSWORD",
    "ENV_TOKEN",
]
