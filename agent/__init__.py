"""The device agent: keeps a device's models as its EdgeDevice says, and proves them first.

    commands     `modelfleet agent` (on the device), `modelfleet device provision` (admin)
    runner       the loop: registration, heartbeat and watch threads, a pass over every slot
    slots        one slot: plan, report, one step at a time, failure records
    steps        each step done: download, verify and store, load on the slot's runtime and
                 probe, write runtime.json, switch links
    reporting    slot status writes (deferred Downloading, skipped when unchanged)
    assignments  what the watched EdgeDevice assigns; whether a running step is stale
    reconcile    the pure core: next step and slot status from assignment + local state
    store        verified artifacts by sha256, `current`/`previous` links and runtime.json
                 per slot
    download     presigned-URL downloads with retries and HTTP Range resume
    probe        session load (engines in `modelfleet.engines`), probe run, comparison rule
    devices      the device's own EdgeDevice: register, status patches, watch
    heartbeats   the device's Lease
    facts        arch, OS, installed engines and their backends, free disk, and refresh
    identity     per-device ServiceAccount, Role, admission policy, kubeconfig
    errors       classified failures = the slot status reasons

Nothing is re-exported here: importing `modelfleet.agent.commands` (which the CLI does for
`--help`) must not pull in the Kubernetes client, NumPy or ONNX Runtime.
"""
