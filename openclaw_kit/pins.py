"""Everything the kit pins, in one place: the OpenClaw and Node.js versions a host gets unless its
settings say otherwise (the settings' defaults), npm, and the checksums the downloads are checked against.

`./kit versions` (openclaw_kit/versions.py) shows them beside the newest the npm registry has.
"""

OPENCLAW_VERSION = "2026.9.6"
NODE_VERSION = "24.21.0"

# sha256 of the Node.js builds the kit knows on Linux, by (source, version, arch); a node_sha256
# setting covers others. nodejs-dist: the official release tarballs (SHASUMS256.txt of each release);
# npm-package: the same builds as published to the npm registry (`npm pack node-linux-<arch>@<version>`).
NODE_LINUX_SHA256 = {
    ("nodejs-dist", "24.21.0", "x64"): "fd8e59d5a511510f6a298afb548f18c7d2b1be404d8b4a27d94fbe49f56cb2d6",
    ("nodejs-dist", "24.21.0", "arm64"): "6ad1325edbdb5649c379b75a237147a666c95d4f9ae8d340fef2d1575d289ad2",
    ("npm-package", "24.21.0", "x64"): "61ecf27ad70afee991b671c28561eb497028294a67d132f9bbaac9ad73f81d3b",
    ("npm-package", "24.22.3", "x64"): "6d747cda21df616c78e9ed4f8a816cbacd25f24c1abb4d9aa26773d000e24bd9",
}
# The official darwin tarballs' sha256 (SHASUMS256.txt of each release), by (version, arch).
NODE_DARWIN_SHA256 = {
    ("24.21.0", "arm64"): "bed7eea5325e1108f32ce5228ddd6a5f0f08a499ee42aa7442aea583702f6057",
    ("24.21.0", "x64"): "1462cb3b3046b815cf8ea436d3da450ec1a9f11dac7e5a46b0ada5305d7e8097",
}

# The npm-package builds carry node only; npm itself comes the same way, pinned.
NPM_VERSION = "11.21.2"
NPM_SHA256 = "8ad8563b81e71b90ef405b140bccf3ba9b5e7884ab210bd49ee4e2f4bc6f61f5"
