"""Audio the callers hear: hold music, ringback and announcements, as files rtpengine can play.

Nothing large is committed: the system melody and tones are synthesised with sox, announcements are
spoken with espeak-ng, and tenants' own files are converted once. Everything is cached by content
under the run directory. rtpengine 10.5's player rejects sox's default 32-bit WAV ("unsupported file
format/codec"), so every file it gets is 8 kHz, mono, 16-bit PCM.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

FORMAT = ["-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer"]

# name -> sox synth arguments (after `sox -n <format> file`)
TONES: dict[str, list[str]] = {
    # a gentle three-note phrase with a short breath (never a long silence: a caller on hold must
    # not wonder whether the line is dead); rtpengine loops it
    "default": ["synth", "0.4", "sine", "523", "vol", "0.3", ":", "synth", "0.4", "sine", "659", "vol", "0.3",
                ":", "synth", "0.8", "sine", "784", "vol", "0.3", ":", "synth", "0.2", "sine", "0", "vol", "0"],
    # ITU-T E.180 / CEPT ringback: 425 Hz, 1 s on, 4 s off
    "ringback": ["synth", "1", "sine", "425", "vol", "0.4", ":", "synth", "4", "sine", "0", "vol", "0"],
    "beep": ["synth", "0.4", "sine", "1000", "vol", "0.5"],
}

# name -> (text, voice) of the system announcements
ANNOUNCEMENTS: dict[str, tuple[str, str]] = {
    "transfer_unknown_number": ("The number you dialled is not available.", "en"),
    "transfer_forbidden": ("That number cannot be reached by transfer.", "en"),
    "transfer_error": ("The transfer could not be made.", "en"),
    "transfer_apology": ("We are sorry, the transfer could not be made. Goodbye.", "en"),
    "transfer_failed_warn_transferor": ("The transfer failed. The call is coming back to you.", "en"),
    "transfer_failed_warn_client": ("The transfer could not be made. Please hold.", "en"),
    "voicemail_greeting": ("Please leave a message after the tone.", "en"),
}


class PromptError(RuntimeError):
    """A prompt could not be produced (missing tool, unreadable file)."""


@dataclass(frozen=True)
class Prompt:
    path: Path
    seconds: float


class PromptLibrary:
    def __init__(self, cache_dir: Path):
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)

    def system(self, name: str) -> Prompt:
        """A system tone or announcement by name, generated on first use."""
        if name in TONES:
            return self._cached(f"tone-{name}", ["sox", "-n", *FORMAT, "{out}", *TONES[name]])
        if name in ANNOUNCEMENTS:
            text, voice = ANNOUNCEMENTS[name]
            return self.speech(text, voice)
        raise PromptError(f"no system prompt named {name!r}")

    def speech(self, text: str, voice: str = "en") -> Prompt:
        """Text spoken by espeak-ng, cached by text and voice, so it is generated once."""
        key = hashlib.sha256(f"{voice}\0{text}".encode()).hexdigest()[:16]
        raw = self.cache_dir / f"tts-{key}.raw.wav"
        if not raw.exists():
            self._run(["espeak-ng", "-v", voice, "-w", str(raw), text])
        return self._cached(f"tts-{key}", ["sox", str(raw), *FORMAT, "{out}"])

    def tenant_file(self, path: Path) -> Prompt:
        """A tenant's own audio (any format sox reads), converted once; cached by content."""
        try:
            digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
        except OSError as exc:
            raise PromptError(f"cannot read {path}: {exc}") from exc
        return self._cached(f"file-{digest}", ["sox", str(path), *FORMAT, "{out}"])

    def _cached(self, stem: str, command: list[str]) -> Prompt:
        out = self.cache_dir / f"{stem}.wav"
        if not out.exists():
            tmp = out.with_suffix(".tmp.wav")
            self._run([str(tmp) if part == "{out}" else part for part in command])
            tmp.replace(out)  # atomic: a concurrent reader never sees half a file
        return Prompt(out, wav_seconds(out))

    @staticmethod
    def _run(command: list[str]) -> None:
        try:
            subprocess.run(command, check=True, capture_output=True, timeout=30)
        except FileNotFoundError as exc:
            raise PromptError(f"{command[0]} is not installed (make setup)") from exc
        except subprocess.CalledProcessError as exc:
            raise PromptError(f"{' '.join(command[:2])}… failed: {exc.stderr.decode(errors='replace')[-300:]}") from exc


def wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / float(w.getframerate())
