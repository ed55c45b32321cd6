"""Content credentials (C2PA): every deliverable is signed, with what made it, as the last write to its file.

- `settings`: the SHOTLINE_C2PA* variables, read without side effects.
- `keys`: the signing chain, loaded and checked (or the development chain, made once under SHOTLINE_HOME).
- `manifest`: what a clip's or a reel's manifest says, from its provenance and what finishing did.
- `signing`: embedding a signed manifest into an mp4.
- `verification`: reading one back, as a typed result.

Submodules are imported explicitly: the C2PA SDK is a native library, loaded only where it is used.
"""
