import os
import platform
import subprocess
import sys

import pytest

from apprentice.process_memory import KERNEL_CACHE_ENTRIES

# Frees a 4 MiB block first, which raises glibc's own mmap threshold to 4 MiB, as a training step's frees
# do; holds 32 MiB in blocks of 512 KiB, frees all but the last (so the heap's top stays in use), then
# calls release_freed_memory. Prints the KiB given back by the frees and then by the release.
GIVEN_BACK_KIB = """
import ctypes, ctypes.util
from apprentice.process_memory import release_freed_memory
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def resident_kib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))
libc.free(libc.malloc(4 << 20))
size = 512 << 10
blocks = [libc.malloc(size) for _ in range(64)]
for block in blocks:
    ctypes.memset(block, 1, size)
held = resident_kib()
for block in blocks[:-1]:
    libc.free(block)
freed = resident_kib()
assert release_freed_memory()
print(held - freed, freed - resident_kib())
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_freed_heap_memory_leaves_the_process_on_release() -> None:
    result = subprocess.run([sys.executable, "-c", GIVEN_BACK_KIB], capture_output=True, text=True, check=True)
    by_free, by_release = (int(word) for word in result.stdout.split())
    assert by_free < 8 * 1024  # glibc keeps what was freed in the middle of its heap...
    assert by_release > 24 * 1024  # ...until it is asked to give it back


# Maps and touches a 128 MiB block, frees it, then does the same again; prints the page faults of the second
# touch. Above glibc's 32 MiB ceiling every such block is mapped anew and each of its pages faulted in again.
# "keep" does both inside `large_blocks_in_heap`, "after" after leaving such a block.
REFAULTS = """
import ctypes, ctypes.util, resource, sys
from apprentice.process_memory import large_blocks_in_heap
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
size = 128 << 20
def touch():
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)
    libc.free(block)
def second_touch_faults():
    touch()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    touch()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
if sys.argv[1] == "keep":
    with large_blocks_in_heap() as kept, large_blocks_in_heap():  # nested: the outer block decides
        assert kept
        print(second_touch_faults())
elif sys.argv[1] == "after":
    with large_blocks_in_heap():
        touch()
    print(second_touch_faults())
else:
    print(second_touch_faults())
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_large_blocks_stay_in_the_heap_while_training_and_are_handed_back_after() -> None:
    def faults(mode: str) -> int:
        done = subprocess.run([sys.executable, "-c", REFAULTS, mode], capture_output=True, text=True, check=True)
        return int(done.stdout)

    mapped_anew = faults("default")  # every page faulted in again: 32768 of 4 KiB (64 with huge pages)
    assert mapped_anew >= 64
    assert faults("keep") * 10 < mapped_anew  # the freed block is reused from the heap
    assert faults("after") * 2 > mapped_anew  # after the block, freed large blocks leave the process again


KERNEL_CACHES = """
import os
import apprentice
print(os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"], os.environ["LRU_CACHE_CAPACITY"])
"""


def test_importing_apprentice_bounds_onednns_kernel_caches_unless_the_environment_sets_them() -> None:
    def entries(environment: dict[str, str]) -> str:
        clean = {key: value for key, value in os.environ.items() if key not in KERNEL_CACHE_ENTRIES}
        done = subprocess.run(
            [sys.executable, "-c", KERNEL_CACHES], env=clean | environment, capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    assert (
        entries({})
        == f"{KERNEL_CACHE_ENTRIES['ONEDNN_PRIMITIVE_CACHE_CAPACITY']} {KERNEL_CACHE_ENTRIES['LRU_CACHE_CAPACITY']}"
    )
    assert entries({"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "7", "LRU_CACHE_CAPACITY": "9"}) == "7 9"
