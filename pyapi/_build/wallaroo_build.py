"""A self-contained PEP 517 build backend for the wallaroo package.

It needs nothing beyond the standard library, so ``pip install ./pyapi``
works offline: pip's isolated build has no requirements to fetch. It builds
a pure-Python wheel (tagged py2.py3) of ``wallaroo`` and
``wallaroo.experimental`` (tests excluded) and an sdist of this directory.
Runs on Python 2.7 and 3.x.
"""

import base64
import hashlib
import io
import os
import tarfile
import zipfile

NAME = "wallaroo"
VERSION = "0.6.0"
SUMMARY = ("The Wallaroo 0.6 Python API, for applications run by "
           "machida/machida3 (wallaroo-go)")
PACKAGES = ["wallaroo", "wallaroo/experimental"]

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_DIST_INFO = "%s-%s.dist-info" % (NAME, VERSION)
_WHEEL_NAME = "%s-%s-py2.py3-none-any.whl" % (NAME, VERSION)


def _metadata():
    return ("Metadata-Version: 2.1\n"
            "Name: %s\n"
            "Version: %s\n"
            "Summary: %s\n"
            "License: Apache-2.0\n"
            "Requires-Python: >=2.7\n"
            "Classifier: Programming Language :: Python :: 2.7\n"
            "Classifier: Programming Language :: Python :: 3\n"
            % (NAME, VERSION, SUMMARY)).encode("utf-8")


def _wheel_file():
    return ("Wheel-Version: 1.0\n"
            "Generator: wallaroo_build\n"
            "Root-Is-Purelib: true\n"
            "Tag: py2-none-any\n"
            "Tag: py3-none-any\n").encode("utf-8")


def _sources():
    """(archive path, file path) of every module to ship, sorted."""
    out = []
    for pkg in PACKAGES:
        d = os.path.join(_ROOT, *pkg.split("/"))
        for name in sorted(os.listdir(d)):
            if name.endswith(".py"):
                out.append((pkg + "/" + name, os.path.join(d, name)))
    return out


def _record_hash(data):
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    d = os.path.join(metadata_directory, _DIST_INFO)
    if not os.path.isdir(d):
        os.makedirs(d)
    for name, data in (("METADATA", _metadata()), ("WHEEL", _wheel_file())):
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    return _DIST_INFO


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    entries = []
    for arc, path in _sources():
        with open(path, "rb") as f:
            entries.append((arc, f.read()))
    entries.append((_DIST_INFO + "/METADATA", _metadata()))
    entries.append((_DIST_INFO + "/WHEEL", _wheel_file()))
    record = io.StringIO() if str is not bytes else io.BytesIO()
    lines = ["%s,%s,%d" % (arc, _record_hash(data), len(data))
             for arc, data in entries]
    lines.append(_DIST_INFO + "/RECORD,,")
    record_data = ("\n".join(lines) + "\n").encode("utf-8")
    entries.append((_DIST_INFO + "/RECORD", record_data))
    target = os.path.join(wheel_directory, _WHEEL_NAME)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for arc, data in entries:
            info = zipfile.ZipInfo(arc, date_time=(2018, 11, 30, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return _WHEEL_NAME


def build_sdist(sdist_directory, config_settings=None):
    base = "%s-%s" % (NAME, VERSION)
    target = os.path.join(sdist_directory, base + ".tar.gz")
    files = [("pyproject.toml", os.path.join(_ROOT, "pyproject.toml")),
             ("README.md", os.path.join(_ROOT, "README.md")),
             ("_build/wallaroo_build.py", os.path.abspath(__file__))]
    files.extend(_sources())
    with tarfile.open(target, "w:gz") as tf:
        for arc, path in files:
            tf.add(path, arcname=base + "/" + arc)
        pkg_info = _metadata()
        info = tarfile.TarInfo(base + "/PKG-INFO")
        info.size = len(pkg_info)
        info.mode = 0o644
        tf.addfile(info, io.BytesIO(pkg_info))
    return os.path.basename(target)
