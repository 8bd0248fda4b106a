"""The blob store: content ids, the Store interface, the local and the remote store."""
