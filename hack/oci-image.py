#!/usr/bin/env python3
"""Assembles a single-layer OCI image archive without a container engine.

Used by hack/image.sh (the controller's image, the same as the Dockerfile's) and hack/node.sh
(the node's pause image). The output is an OCI image layout in a tar archive (oci-layout,
index.json, blobs/sha256/...), which `ctr images import` and `skopeo copy oci-archive:` read.

The layer is written from an explicit list of entries, each with its own mode and owner, so
the image does not depend on the owners of the files on the build machine, and it is
reproducible: entries sorted, every timestamp 0, no user or group names.

    oci-image.py --out IMAGE.tar --ref NAME:TAG \
        --file SRC:DEST:MODE[:UID:GID] ... --dir DEST:MODE[:UID:GID] ... \
        --user 65532:65532 --entrypoint '["/kube-lighthouse"]' --port 8080 --label K=V \
        --env K=V [--print-config]

--print-config prints the image configuration (JSON) and writes nothing else: the test that
compares the Dockerfile with hack/image.sh reads it.
"""

import argparse
import hashlib
import io
import json
import os
import sys
import tarfile


def entry_spec(text, with_source):
    parts = text.split(":")
    if with_source:
        if len(parts) not in (3, 5):
            raise SystemExit(f"--file wants SRC:DEST:MODE[:UID:GID], not {text!r}")
        src, dest, mode, *owner = parts
    else:
        if len(parts) not in (2, 4):
            raise SystemExit(f"--dir wants DEST:MODE[:UID:GID], not {text!r}")
        src = None
        dest, mode, *owner = parts
    uid, gid = (int(owner[0]), int(owner[1])) if owner else (0, 0)
    return {"src": src, "dest": dest.strip("/"), "mode": int(mode, 8), "uid": uid, "gid": gid}


def layer_tar(files, dirs):
    """The layer as an uncompressed tar (bytes). Parent directories are added as 0755 root."""
    entries = {}
    for d in dirs:
        entries[d["dest"]] = d
    for f in files:
        entries[f["dest"]] = f
    for path in list(entries):
        parent = os.path.dirname(path)
        while parent and parent not in entries:
            entries[parent] = {"src": None, "dest": parent, "mode": 0o755, "uid": 0, "gid": 0}
            parent = os.path.dirname(parent)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(entries):
            e = entries[path]
            info = tarfile.TarInfo(path)
            info.mode, info.uid, info.gid, info.mtime = e["mode"], e["uid"], e["gid"], 0
            info.uname = info.gname = ""
            if e["src"] is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                with open(e["src"], "rb") as fh:
                    data = fh.read()
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def image_config(args, diff_id):
    config = {
        "User": args.user,
        "Entrypoint": json.loads(args.entrypoint),
        "Env": args.env,
        "WorkingDir": "/",
        "Labels": dict(label.split("=", 1) for label in args.label),
    }
    if args.cmd:
        config["Cmd"] = json.loads(args.cmd)
    if args.port:
        config["ExposedPorts"] = {f"{p}/tcp" if "/" not in p else p: {} for p in args.port}
    return {
        "created": "1970-01-01T00:00:00Z",
        "architecture": args.arch,
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "hack/oci-image.py"}],
    }


def blob(data):
    return "sha256:" + hashlib.sha256(data).hexdigest(), data


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out")
    p.add_argument("--ref", required=True, help="the image's name, e.g. ghcr.io/org/app:1.0")
    p.add_argument("--file", action="append", default=[])
    p.add_argument("--dir", action="append", default=[])
    p.add_argument("--user", default="0:0")
    p.add_argument("--entrypoint", required=True, help="a JSON array")
    p.add_argument("--cmd", help="a JSON array")
    p.add_argument("--port", action="append", default=[])
    p.add_argument("--label", action="append", default=[])
    p.add_argument("--env", action="append", default=[])
    p.add_argument("--arch", default="amd64")
    p.add_argument("--print-config", action="store_true")
    args = p.parse_args()

    if args.print_config:
        json.dump(image_config(args, "sha256:" + "0" * 64)["config"], sys.stdout, indent=2, sort_keys=True)
        print()
        return
    if not args.out:
        raise SystemExit("--out is required unless --print-config")

    layer_digest, layer = blob(layer_tar([entry_spec(f, True) for f in args.file], [entry_spec(d, False) for d in args.dir]))
    config_digest, config = blob(json.dumps(image_config(args, layer_digest), sort_keys=True).encode())
    manifest_digest, manifest = blob(
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": len(config)},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": len(layer)}],
            },
            sort_keys=True,
        ).encode()
    )
    tag = args.ref.rsplit(":", 1)[1] if ":" in args.ref.rsplit("/", 1)[-1] else "latest"
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": manifest_digest,
                    "size": len(manifest),
                    "platform": {"architecture": args.arch, "os": "linux"},
                    # containerd's import names the image after the first; other tools the second.
                    "annotations": {"io.containerd.image.name": args.ref, "org.opencontainers.image.ref.name": tag},
                }
            ],
        },
        sort_keys=True,
    ).encode()

    files = [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", index)]
    for digest, data in ((layer_digest, layer), (config_digest, config), (manifest_digest, manifest)):
        files.append(("blobs/sha256/" + digest.split(":", 1)[1], data))
    tmp = args.out + ".tmp"
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, args.out)
    print(f"{args.out}: {args.ref} {manifest_digest} (layer {len(layer)} bytes)")


if __name__ == "__main__":
    main()
