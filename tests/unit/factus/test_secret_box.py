"""SecretBox: secrets at rest are encrypted, and a wrong key fails with a clear config error."""

from __future__ import annotations

import pytest

from einvoice.crypto import SecretBox, SecretDecryptError, SecretKeyError
from einvoice.errors import ConfigError
from einvoice.settings import load_settings


def test_a_secret_round_trips_and_is_not_readable_in_between() -> None:
    box = SecretBox(SecretBox.generate_key())
    sealed = box.encrypt("contraseña-secreta")
    assert "contraseña" not in sealed
    assert box.decrypt(sealed) == "contraseña-secreta"
    assert box.encrypt("contraseña-secreta") != sealed  # random IV each time


def test_a_value_from_another_key_is_a_clear_config_error() -> None:
    sealed = SecretBox(SecretBox.generate_key()).encrypt("p4ss")
    with pytest.raises(SecretDecryptError) as caught:
        SecretBox(SecretBox.generate_key()).decrypt(sealed)
    assert isinstance(caught.value, ConfigError)
    assert caught.value.reason == "secret_key_mismatch"
    assert "EINVOICE_SECRET_KEY" in caught.value.message
    assert sealed not in caught.value.message


def test_an_altered_value_is_refused() -> None:
    box = SecretBox(SecretBox.generate_key())
    sealed = box.encrypt("p4ss")
    with pytest.raises(SecretDecryptError):
        box.decrypt(sealed[:-4] + "AAAA")


def test_a_malformed_key_is_refused_without_echoing_it() -> None:
    with pytest.raises(SecretKeyError) as caught:
        SecretBox("not-a-key")
    assert "not-a-key" not in caught.value.message
    assert "not-a-key" not in repr(SecretBox(SecretBox.generate_key()))


def test_a_generated_key_is_accepted_by_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    key = SecretBox.generate_key()
    monkeypatch.setenv("EINVOICE_SECRET_KEY", key)
    box = SecretBox.from_settings(load_settings())
    assert box.decrypt(SecretBox(key).encrypt("x")) == "x"
