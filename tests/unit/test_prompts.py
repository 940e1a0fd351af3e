"""Audio the callers hear: generated once, in the one format rtpengine 10.5 plays; bad tenant audio falls
back to the system prompt. (Runs sox and espeak-ng, installed by `make setup`.)"""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import pytest

from controller.adapters.prompts import PromptError, PromptLibrary
from controller.adapters.rtpengine_media import MediaExecutor
from controller.core import PromptRef


def fmt(path: Path) -> tuple[int, int, int]:
    with wave.open(str(path)) as w:
        return w.getframerate(), w.getnchannels(), w.getsampwidth()


@pytest.mark.parametrize("name", ["default", "ringback", "beep", "transfer_unknown_number", "voicemail_greeting"])
def test_system_prompts_are_8khz_mono_16bit(tmp_path: Path, name: str) -> None:
    prompt = PromptLibrary(tmp_path).system(name)
    assert fmt(prompt.path) == (8000, 1, 2) and prompt.seconds > 0.2


def test_speech_is_generated_once_per_text_and_voice(tmp_path: Path) -> None:
    lib = PromptLibrary(tmp_path)
    ru = lib.speech("Перевод не удался", "ru")
    mtime = ru.path.stat().st_mtime_ns
    assert lib.speech("Перевод не удался", "ru").path == ru.path and ru.path.stat().st_mtime_ns == mtime
    en = lib.speech("Перевод не удался", "en")
    assert en.path != ru.path and fmt(en.path) == (8000, 1, 2)


@pytest.mark.parametrize("suffix", ["wav", "mp3", "ogg", "flac"])  # what tenants upload
def test_a_tenant_file_in_another_format_is_converted(tmp_path: Path, suffix: str) -> None:
    upload = tmp_path / f"music.{suffix}"
    subprocess.run(["sox", "-n", "-r", "44100", "-c", "2", str(upload), "synth", "1", "sine", "300"], check=True)
    prompt = PromptLibrary(tmp_path / "cache").tenant_file(upload)
    assert fmt(prompt.path) == (8000, 1, 2) and abs(prompt.seconds - 1.0) < 0.1


@pytest.mark.parametrize("content", [None, b"not audio at all"])
def test_a_missing_or_broken_tenant_file_is_a_prompt_error(tmp_path: Path, content: bytes | None) -> None:
    upload = tmp_path / "upload.wav"
    if content is not None:
        upload.write_bytes(content)
    with pytest.raises(PromptError):
        PromptLibrary(tmp_path / "cache").tenant_file(upload)


def test_unusable_tenant_audio_falls_back_to_the_system_prompt(tmp_path: Path, caplog) -> None:
    lib = PromptLibrary(tmp_path)
    media = MediaExecutor(ng=None, prompts=lib)  # type: ignore[arg-type]
    played = media.prompt(PromptRef.file("transfer_apology", str(tmp_path / "missing.wav")))
    assert played.path == lib.system("transfer_apology").path
    assert "system prompt 'transfer_apology' instead" in caplog.text


def test_an_unknown_system_prompt_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PromptError):
        PromptLibrary(tmp_path).system("no_such_prompt")


def test_the_recorder_answers_a_subscription_with_the_offered_codecs() -> None:
    from controller.adapters.voicemail import recorder_answer

    offer = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
             "m=audio 30000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
             "a=fmtp:101 0-16\r\na=rtpmap:0 PCMU/8000\r\na=sendonly\r\n")
    answer = recorder_answer(offer, "127.0.0.9", 40000).split("\r\n")
    assert "m=audio 40000 RTP/AVP 8 101" in answer and "c=IN IP4 127.0.0.9" in answer
    assert {"a=rtpmap:8 PCMA/8000", "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16"} <= set(answer)
    assert "a=rtpmap:0 PCMU/8000" not in answer and "a=recvonly" in answer
