package transit

import "github.com/wardproject/ward/sdk/gencache"

// keyCache holds the parsed keyring of named keys, so that a request on a
// cached key makes no storage call and parses nothing: encrypting is
// decode, seal, encode. It follows sdk/gencache's rules: the host
// invalidates policy/<name> after a change made elsewhere (another WASM
// instance of the mount, another replica, a restore behind the plugin),
// which drops the name.
//
// Keyrings are immutable, so a handler that took one keeps a consistent
// snapshot for the whole request even if a rotation publishes a newer one
// meanwhile: its answer is ordered before the rotation.
//
// Absence is not cached (a missing key costs a storage read; only the
// upsert and error paths meet one).
type keyCache = gencache.Cache[*keyring]
