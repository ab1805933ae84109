"""The math libraries' settings (ppo_toolbox/cpu.py): the CPU's vendor, and the defaults set for it, never over the
user's own."""
from ppo_toolbox import cpu


def test_an_amd_cpu_gets_mkls_fast_path_and_one_blas_thread_and_the_users_own_settings_stay(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\n")
    assert cpu.cpu_vendor(info) == "AuthenticAMD"
    assert cpu.cpu_vendor(tmp_path / "missing") is None
    environ = {}
    assert cpu.set_math_library_defaults(environ, vendor="AuthenticAMD") == environ == {
        "OPENBLAS_NUM_THREADS": "1", "MKL_DEBUG_CPU_TYPE": "5"}
    intel = {}
    cpu.set_math_library_defaults(intel, vendor="GenuineIntel")
    assert intel == {"OPENBLAS_NUM_THREADS": "1"}  # MKL's fast path is already Intel's
    mine = {"MKL_DEBUG_CPU_TYPE": "0", "OPENBLAS_NUM_THREADS": "2"}
    assert cpu.set_math_library_defaults(mine, vendor="AuthenticAMD") == {}
    assert mine == {"MKL_DEBUG_CPU_TYPE": "0", "OPENBLAS_NUM_THREADS": "2"}  # the user's own are kept
