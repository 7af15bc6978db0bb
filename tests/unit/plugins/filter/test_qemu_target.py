"""The qemu_target filter maps platforms to the QEMU target that runs them."""
import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.archfleet.multiarch.plugins.filter.qemu_target import qemu_target


@pytest.mark.parametrize("platform, target", [
    ("linux/amd64", "x86_64"), ("386", "i386"), ("linux/arm64/v8", "aarch64"), ("arm64", "aarch64"),
    ("linux/arm/v7", "arm"), ("linux/arm/v6", "arm"), ("ppc64le", "ppc64le"), ("linux/s390x", "s390x"),
    ("linux/riscv64", "riscv64"), ("linux/mips64le", "mips64el"), ("aarch64", "aarch64"),
])
def test_targets(platform, target):
    assert qemu_target(platform) == target


def test_unknown_fails_with_the_value():
    with pytest.raises(AnsibleFilterError, match="qemu_target: Unknown architecture 'linux/wasm'"):
        qemu_target("linux/wasm")


def test_missing_value_instead_of_failing():
    assert qemu_target("linux/wasm", missing="") == ""


@pytest.mark.parametrize("platform, machine", [
    ("linux/arm64", "aarch64"), ("linux/arm/v7", "armv7l"), ("386", "i686"), ("linux/s390x", "s390x"),
    ("linux/mips64le", "mips64"), ("linux/amd64", "x86_64"),
])
def test_machine_is_what_uname_prints_under_the_emulator(platform, machine):
    assert qemu_target(platform, machine=True) == machine


@pytest.mark.parametrize("platform, target", [
    ("linux/amd64/v3", "x86_64"), ("linux/arm64/v8.2", "aarch64"), ("linux/armv7l", "arm"), ("armv6l", "arm"),
    ("linux/i686", "i386"), ("linux/ppc64el", "ppc64le"), ("linux/loongarch64", "loongarch64"),
    ("linux/riscv64/rva22u64", "riscv64"),
])
def test_every_platform_alias_and_variant_the_platform_model_accepts(platform, target):
    assert qemu_target(platform) == target


@pytest.mark.parametrize("platform", ["windows/amd64", "linux/amd64/v8", "linux/386/v7"])
def test_platforms_without_an_emulator_or_impossible_variants_fail(platform):
    assert qemu_target(platform, missing="none") == "none"
