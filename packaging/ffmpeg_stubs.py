"""Stub libraries for the parts of PyAV's FFmpeg that mmdesk never runs: encoders and TLS.

PyAV's wheel links libavcodec against x264, x265, SVT-AV1, libvpx, LAME, OpenCORE AMR-NB and libwebp
(encoders; FFmpeg decodes H.264, HEVC, VP8/9, MP3, AMR-NB and WebP with its own decoders, and AV1 with
dav1d, which stays) and libavformat against GnuTLS (https:// and tls:// inputs; mmdesk reads local files,
cameras and http:// streams). They are DT_NEEDED, so the dynamic linker wants them at start-up even though
mmdesk never encodes or opens TLS. ``replace_with_stubs`` swaps each for a small library with the same
SONAME that defines exactly the symbols the remaining FFmpeg libraries import from it (with their symbol
versions). Every stub function returns what the FFmpeg wrapper treats as failure (checked against
libavcodec/libx264.c, libx265.c, libsvtav1.c, libvpxenc.c, libvpxdec.c, libmp3lame.c, libopencore-amr.c,
libwebpenc_common.c, libwebpenc_animencoder.c and libavformat/tls_gnutls.c), so a stray call ends in an
FFmpeg error, never in a NULL dereference. Libraries that only the replaced ones needed (GnuTLS's nettle,
hogweed, gmp, libunistring; libwebp's sharpyuv) are then removed.

A symbol the table does not know stops the build: a new PyAV may call something whose failure value has to
be looked up first. Qt ships its own FFmpeg the same way (libQt6FFmpegStub-*.so).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

#: found in every stub (tests and `replace_with_stubs` recognise a stub by it)
MARKER = "mmdesk stub library"


@dataclass(frozen=True)
class Stub:
    why: str
    #: symbol -> C expression returned (as a long, so negative values reach 64-bit callers sign-extended);
    #: "MSG" returns a static message string (for functions FFmpeg passes straight to av_log)
    returns: dict[str, str]
    #: symbol -> complete C definition, for the few that need their arguments
    functions: dict[str, str] = field(default_factory=dict)
    prelude: str = ""


def _all(value: str, names: str) -> dict[str, str]:
    return dict.fromkeys(names.split(), value)


# EbErrorType EB_ErrorUndefined; the eb_enc_* wrappers test != EB_ErrorNone (0)
_SVT_FAIL = "(int)0x80001001"
# The x265 multi-library API: FFmpeg takes x265_api_get(depth), falls back to x265_api_get(0) and calls
# through the returned table without a NULL check, so depth 0 returns a table whose functions all return
# 0/NULL (param_alloc() == NULL: "Could not allocate x265 param structure", and param_free(NULL) in the
# close that follows is a no-op). Layout of x265 build 216 (read from the real library): 8 ints, version and
# build strings, 21 functions, sizeof_frame_stats, more functions.
_X265_PRELUDE = """
static long x265_fail(void) { return 0; }
static const struct {
    int ints[8];
    const char *version_str, *build_info_str;
    long (*functions[21])(void);
    long sizeof_frame_stats;
    long (*more_functions[64])(void);
} x265_stub_api = {
    {1, 216, 0, 0, 0, 0, 0, 8}, MSG, MSG,
    {[0 ... 20] = x265_fail}, 0, {[0 ... 63] = x265_fail},
};
"""

STUBS: dict[str, Stub] = {
    "libx265": Stub(
        "H.265 encoder (decoding uses FFmpeg's hevc decoder)", {},
        functions={"x265_api_get_216": "const void *x265_api_get_216(int depth) "
                                       "{ return depth ? 0 : &x265_stub_api; }"},
        prelude=_X265_PRELUDE),
    "libSvtAv1Enc": Stub(
        "AV1 encoder (decoding uses dav1d)",
        _all(_SVT_FAIL, "svt_av1_enc_init_handle svt_av1_enc_set_parameter svt_av1_enc_init svt_av1_enc_deinit "
                        "svt_av1_enc_deinit_handle svt_av1_enc_get_packet svt_av1_enc_send_picture "
                        "svt_av1_enc_stream_header svt_av1_enc_stream_header_release svt_av1_enc_parse_parameter "
                        "svt_av1_enc_get_stream_info svt_av1_enc_release_out_buffer")
        | {"svt_add_metadata": "-1", "svt_metadata_array_free": "0"}),
    "libx264": Stub(
        "H.264 encoder (decoding uses FFmpeg's h264 decoder)",
        # x264_param_default_preset is the first call that can fail: "Error setting preset/tune"
        _all("-1", "x264_param_default_preset x264_param_apply_profile x264_param_parse x264_encoder_headers "
                   "x264_encoder_encode x264_encoder_reconfig")
        | _all("0", "x264_encoder_open_165 x264_encoder_close x264_encoder_delayed_frames "
                    "x264_encoder_maximum_delayed_frames x264_param_default x264_param_cleanup x264_picture_init "
                    "x264_param_apply_fastfirstpass")),
    "libvpx": Stub(
        "VP8/VP9 encoder and alternative decoders (FFmpeg's own vp8/vp9 decoders are the default)",
        # vpx_codec_err_t: VPX_CODEC_ERROR (1); the version (0) only marks libvpx-vp9 experimental at start-up
        _all("1", "vpx_codec_control_ vpx_codec_dec_init_ver vpx_codec_decode vpx_codec_destroy "
                  "vpx_codec_enc_config_default vpx_codec_enc_config_set vpx_codec_enc_init_ver vpx_codec_encode "
                  "vpx_codec_set_frame_buffer_functions")
        | _all("0", "vpx_codec_get_caps vpx_codec_get_cx_data vpx_codec_get_frame vpx_codec_version vpx_codec_vp8_cx "
                    "vpx_codec_vp8_dx vpx_codec_vp9_cx vpx_codec_vp9_dx vpx_img_wrap")
        | _all("MSG", "vpx_codec_build_config vpx_codec_err_to_string vpx_codec_error vpx_codec_error_detail "
                      "vpx_codec_version_str")),
    "libmp3lame": Stub(
        "MP3 encoder (decoding uses FFmpeg's mp3 decoder)",
        # lame_init() == NULL is checked first (ENOMEM); the setters' results are not
        {"lame_init": "0"}
        | _all("-1", "lame_close lame_encode_buffer lame_encode_buffer_float lame_encode_buffer_int "
                     "lame_encode_flush lame_get_encoder_delay lame_get_framesize lame_init_params lame_set_VBR "
                     "lame_set_VBR_mean_bitrate_kbps lame_set_VBR_quality lame_set_bWriteVbrTag lame_set_brate "
                     "lame_set_copyright lame_set_disable_reservoir lame_set_in_samplerate lame_set_lowpassfreq "
                     "lame_set_mode lame_set_num_channels lame_set_original lame_set_out_samplerate "
                     "lame_set_quality")),
    "libopencore-amrnb": Stub(
        "AMR-NB encoder and alternative decoder (FFmpeg's amrnb decoder is the default); both wrappers "
        "check the *_Interface_init() result",
        _all("0", "Decoder_Interface_init Encoder_Interface_init Decoder_Interface_Decode Decoder_Interface_exit "
                  "Encoder_Interface_Encode Encoder_Interface_exit")),
    # libwebp's convention: 0 is failure (WebPConfigInitInternal first: "WebPConfigPreset() failed")
    "libwebp": Stub(
        "WebP encoder (decoding uses FFmpeg's webp decoder)",
        _all("0", "WebPCleanupTransparentArea WebPConfigInitInternal WebPEncode WebPFree WebPMemoryWrite "
                  "WebPMemoryWriterClear WebPMemoryWriterInit WebPPictureFree WebPPictureInitInternal "
                  "WebPValidateConfig")),
    "libwebpmux": Stub(
        "animated WebP encoder",
        _all("0", "WebPAnimEncoderAdd WebPAnimEncoderAssemble WebPAnimEncoderDelete WebPAnimEncoderNewInternal "
                  "WebPAnimEncoderOptionsInitInternal")),
    # GNUTLS_E_INTERNAL_ERROR (-59). tls_open loops on gnutls_handshake until gnutls_error_is_fatal() says 1,
    # and logs gnutls_strerror(); the certificate checks fail with 0 / GNUTLS_CRT_UNKNOWN / NULL.
    "libgnutls": Stub(
        "TLS for https:// and tls:// inputs and the WHIP muxer's DTLS",
        _all("-59", "gnutls_bye gnutls_certificate_allocate_credentials gnutls_certificate_free_credentials "
                    "gnutls_certificate_set_verify_flags gnutls_certificate_set_x509_key "
                    "gnutls_certificate_set_x509_key_file gnutls_certificate_set_x509_key_mem "
                    "gnutls_certificate_set_x509_system_trust gnutls_certificate_set_x509_trust_file "
                    "gnutls_certificate_verify_peers2 gnutls_credentials_set gnutls_deinit gnutls_dtls_set_mtu "
                    "gnutls_global_deinit gnutls_global_init gnutls_handshake gnutls_init gnutls_record_recv "
                    "gnutls_record_send gnutls_server_name_set gnutls_set_default_priority gnutls_srtp_get_keys "
                    "gnutls_srtp_set_profile gnutls_transport_set_ptr gnutls_transport_set_pull_function "
                    "gnutls_transport_set_pull_timeout_function gnutls_transport_set_push_function "
                    "gnutls_x509_crt_deinit gnutls_x509_crt_export gnutls_x509_crt_get_fingerprint "
                    "gnutls_x509_crt_import gnutls_x509_crt_init gnutls_x509_crt_set_activation_time "
                    "gnutls_x509_crt_set_dn gnutls_x509_crt_set_expiration_time gnutls_x509_crt_set_issuer_dn "
                    "gnutls_x509_crt_set_key gnutls_x509_crt_set_serial gnutls_x509_crt_set_version "
                    "gnutls_x509_crt_sign2 gnutls_x509_privkey_deinit gnutls_x509_privkey_export "
                    "gnutls_x509_privkey_generate gnutls_x509_privkey_import gnutls_x509_privkey_init")
        | _all("0", "gnutls_certificate_get_peers gnutls_certificate_type_get gnutls_x509_crt_check_hostname "
                    "gnutls_sec_param_to_pk_bits gnutls_dtls_get_data_mtu")
        | {"gnutls_error_is_fatal": "1", "gnutls_strerror": "MSG"}),
}

_HASHED = re.compile(r"^(lib.+?)-[0-9a-f]{8}\.so")  # auditwheel's renamed copies: libx265-f5385bb8.so.216


class StubError(Exception):
    pass


def _tool(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def soname(lib: Path) -> str:
    found = re.search(r"\(SONAME\)\s+Library soname: \[([^\]]+)\]", _tool("readelf", "-d", str(lib)))
    return found.group(1) if found else lib.name


def needed(lib: Path) -> list[str]:
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", _tool("readelf", "-d", str(lib)))


def elf_files(bundle: Path) -> list[Path]:
    return sorted(p for p in bundle.rglob("*.so*") if p.is_file() and not p.is_symlink())


def is_stub(lib: Path) -> bool:
    return MARKER.encode() in lib.read_bytes()


def imported_symbols(consumers: list[Path], lib: Path) -> tuple[dict[str, str], dict[str, tuple[str, int]]]:
    """({symbol: version or ""} that ``consumers`` import from ``lib``, {symbol lib defines: (nm type, size)})."""
    defined: dict[str, tuple[str, int]] = {}  # name -> (nm type, size)
    for line in _tool("nm", "-D", "-S", "--defined-only", str(lib)).splitlines():
        parts = line.split()
        if len(parts) == 4:
            defined[parts[3].split("@")[0]] = (parts[2], int(parts[1], 16))
        elif len(parts) == 3:
            defined[parts[2].split("@")[0]] = (parts[1], 0)
    wanted: dict[str, str] = {}
    for consumer in consumers:
        for line in _tool("nm", "-D", "--undefined-only", str(consumer)).splitlines():
            name, _, version = line.split()[-1].partition("@")
            if name in defined:
                wanted[name] = version
    return wanted, defined


def stub_source(stub: Stub, lib_name: str, wanted: dict[str, str], defined: dict[str, tuple[str, int]]) -> str:
    msg = f"{lib_name} is not included in mmdesk ({MARKER}: {stub.why})".replace('"', "'")
    lines = [f'#define MSG "{msg}"', f'__attribute__((used)) static const char marker[] = "{MARKER}";',
             stub.prelude]
    unknown = []
    for name in sorted(wanted):
        kind, size = defined[name]
        if kind in "DBRVGS":  # data: the same size, zero-filled (x264_levels: an empty, 0-terminated table)
            lines.append(f"const unsigned char {name}[{max(size, 1)}] __attribute__((aligned(16))) = {{0}};")
        elif name in stub.functions:
            lines.append(stub.functions[name])
        elif name in stub.returns:
            value = stub.returns[name]
            lines.append(f"long {name}(void) {{ return {'(long)MSG' if value == 'MSG' else f'(long)({value})'}; }}")
        else:
            unknown.append(name)
    if unknown:
        raise StubError(f"the FFmpeg libraries import {', '.join(unknown)} from {lib_name}, which the stub table "
                        "in packaging/ffmpeg_stubs.py does not know; look up the value the FFmpeg wrapper treats "
                        "as failure and add it")
    return "\n".join(lines) + "\n"


def version_script(wanted: dict[str, str]) -> str:
    """Exports exactly ``wanted``, each under the version node the consumers ask for (GnuTLS: GNUTLS_3_4);
    an unversioned reference binds to any definition, so those go into the first node."""
    versions = sorted({v for v in wanted.values() if v})
    if not versions:
        return f"{{ global: {' '.join(n + ';' for n in sorted(wanted))} local: *; }};\n"
    nodes = {v: sorted(n for n, nv in wanted.items() if nv == v or (not nv and v == versions[0])) for v in versions}
    return "".join(f"{v} {{ global: {' '.join(n + ';' for n in names)}{' local: *;' if i == 0 else ''} }};\n"
                   for i, (v, names) in enumerate(nodes.items()))


def build_stub(source: str, script: str, so_name: str, out: Path, work: Path) -> None:
    c, ver = work / f"{out.name}.c", work / f"{out.name}.map"
    c.write_text(source, encoding="utf-8")
    ver.write_text(script, encoding="utf-8")
    # no libc: a stub needs nothing, so it has no DT_NEEDED of its own
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-s", "-nostdlib", f"-Wl,-soname,{so_name}",
                    f"-Wl,--version-script={ver}", "-Wl,-z,noexecstack", "-o", str(out), str(c)],
                   check=True, capture_output=True, text=True)


def missing_tools() -> list[str]:
    return [t for t in ("gcc", "nm", "readelf") if not shutil.which(t)]


def replace_with_stubs(bundle: Path, work: Path) -> tuple[dict[str, int], dict[str, int]]:
    """Replace the libraries of STUBS in ``bundle`` by stubs; remove what only they needed.

    Returns ({replaced file: bytes saved}, {removed file: bytes}); StubError on an unknown symbol."""
    work.mkdir(parents=True, exist_ok=True)
    files = elf_files(bundle)
    targets = {}
    for f in files:  # only PyAV's own copies: a system libmp3lame beside libsndfile is another matter
        m = _HASHED.match(f.name)
        if f.parent.name == "av.libs" and m and m.group(1) in STUBS and not is_stub(f):
            targets[f] = STUBS[m.group(1)]
    needs = {f: needed(f) for f in files}
    replaced: dict[str, int] = {}
    dropped_deps: set[str] = set()
    for lib, stub in targets.items():
        name = soname(lib)
        consumers = [f for f in files if f not in targets and name in needs[f]]
        wanted, defined = imported_symbols(consumers, lib)
        out = work / lib.name
        build_stub(stub_source(stub, lib.name, wanted, defined), version_script(wanted), name, out, work)
        before = lib.stat().st_size
        shutil.copymode(lib, out)
        dropped_deps.update(needs[lib])
        out.replace(lib)
        needs[lib] = []
        replaced[str(lib.relative_to(bundle))] = before - lib.stat().st_size
    removed: dict[str, int] = {}
    changed = True
    while changed:  # a dependency of a replaced library that nothing else needs any more (nettle -> gmp too)
        changed = False
        still_needed = {n for f, ns in needs.items() if f.exists() for n in ns}
        for f in files:
            if f.exists() and f.name in dropped_deps and soname(f) not in still_needed and f.name not in still_needed:
                removed[str(f.relative_to(bundle))] = f.stat().st_size
                dropped_deps.update(needs[f])
                f.unlink()
                changed = True
    return replaced, removed
