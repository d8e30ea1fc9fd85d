# libostree calls of the ostree test host's bootc stand-in, through the
# GObject bindings (Debian: gir1.2-ostree-1.0, python3-gi). Run as
#   /usr/bin/python3 -c <this file> SYSROOT state
#   /usr/bin/python3 -c <this file> SYSROOT write ID...
# SYSROOT "/" is the booted system (libostree then finds the booted
# deployment); IDs are "<stateroot>/<checksum>.<serial>" in the new order.
import json
import sys

import gi

gi.require_version("OSTree", "1.0")
from gi.repository import Gio, GLib, OSTree  # noqa: E402

IMAGE_REF_PREFIX = "ostree/container/image/"


def open_sysroot(path):
    if path == "/":
        sysroot = OSTree.Sysroot.new_default()
    else:
        sysroot = OSTree.Sysroot.new(Gio.File.new_for_path(path))
    sysroot.load(None)
    return sysroot


def ident(d):
    return "%s/%s.%d" % (d.get_osname(), d.get_csum(), d.get_deployserial())


def commit_metadata(repo, csum):
    ok, commit = repo.load_variant(OSTree.ObjectType.COMMIT, csum)
    meta = commit.get_child_value(0).unpack()
    return {k: v for k, v in meta.items() if isinstance(v, str)}


def origin_image(d):
    origin = d.get_origin()
    if origin is None:
        return None
    try:
        return origin.get_string("origin", "container-image-reference")
    except GLib.Error:
        return None


def state(sysroot):
    ok, repo = sysroot.get_repo(None)
    booted = sysroot.get_booted_deployment()
    out = {"booted": None, "deployments": [], "images": []}
    for d in sysroot.get_deployments():
        is_booted = booted is not None and d.equal(booted)
        if is_booted:
            out["booted"] = d.get_index()
        out["deployments"].append({
            "id": ident(d),
            "index": d.get_index(),
            "stateroot": d.get_osname(),
            "checksum": d.get_csum(),
            "serial": d.get_deployserial(),
            "staged": d.is_staged(),
            "pinned": d.is_pinned(),
            "booted": is_booted,
            "origin": origin_image(d),
            "metadata": commit_metadata(repo, d.get_csum()),
        })
    ok, refs = repo.list_refs(None, None)
    for ref, csum in sorted(refs.items()):
        if ref.startswith(IMAGE_REF_PREFIX):
            meta = commit_metadata(repo, csum)
            out["images"].append({"ref": ref, "checksum": csum,
                                  "digest": meta.get("ostree.manifest-digest")})
    json.dump(out, sys.stdout)


def write(sysroot, ids):
    # Reorders (and drops the staged deployment) as bootc rollback does:
    # one write_deployments call under the sysroot lock, checked against
    # what the caller saw.
    sysroot.lock()
    try:
        sysroot.load(None)
        current = sysroot.get_deployments()
        by_id = {ident(d): d for d in current}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise SystemExit("deployments changed meanwhile: %s not found" % missing)
        dropped = [d for d in current if ident(d) not in ids and not d.is_staged()]
        if dropped:
            raise SystemExit("refusing to drop deployments %s" % [ident(d) for d in dropped])
        sysroot.write_deployments([by_id[i] for i in ids], None)
    finally:
        sysroot.unlock()


def main():
    sysroot = open_sysroot(sys.argv[1])
    cmd = sys.argv[2]
    if cmd == "state":
        state(sysroot)
    elif cmd == "write":
        write(sysroot, sys.argv[3:])
    else:
        raise SystemExit("unknown command %r" % cmd)


main()
