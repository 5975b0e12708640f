package main

import (
	"strings"
	"testing"
)

const (
	unsealedStatus = `{"type":"shamir","initialized":true,"sealed":false,"t":1,"n":1,"progress":0,"nonce":"",
	  "version":"0.1.0","commit_date":"2026-08-21T14:58:13Z","migration":false,"cluster_name":"ward-cluster",
	  "cluster_id":"18e5","storage_type":"pebble"}`
	sealedStatus = `{"type":"shamir","initialized":true,"sealed":true,"t":3,"n":5,"progress":1,"nonce":"abc",
	  "version":"0.1.0","storage_type":"pebble"}`
)

func TestStatus(t *testing.T) {
	t.Run("unsealed exits 0", func(t *testing.T) {
		f := setup(t)
		f.on("GET", "/v1/sys/seal-status", 200, unsealedStatus)
		f.on("GET", "/v1/sys/leader", 200, `{"ha_enabled":false}`)
		r := ward(t, "", "status").wantCode(t, 0)
		kv := parseKeyValueTable(t, r.stdout)
		want := map[string]string{"Seal Type": "shamir", "Initialized": "true", "Sealed": "false",
			"Total Shares": "1", "Threshold": "1", "Version": "0.1.0", "Storage Type": "pebble",
			"Cluster Name": "ward-cluster", "HA Enabled": "false"}
		for k, v := range want {
			if kv[k] != v {
				t.Errorf("%s = %q, want %q", k, kv[k], v)
			}
		}
		if _, ok := kv["Unseal Progress"]; ok {
			t.Errorf("unsealed status shows unseal progress")
		}
	})
	t.Run("sealed exits 2", func(t *testing.T) {
		f := setup(t)
		f.on("GET", "/v1/sys/seal-status", 200, sealedStatus)
		r := ward(t, "", "status").wantCode(t, 2)
		kv := parseKeyValueTable(t, r.stdout)
		if kv["Sealed"] != "true" || kv["Unseal Progress"] != "1/3" || kv["Unseal Nonce"] != "abc" {
			t.Errorf("table = %v", kv)
		}
		for _, req := range f.requests() {
			if req.Path == "/v1/sys/leader" {
				t.Errorf("sys/leader queried while sealed")
			}
		}
	})
	t.Run("sealed json still exits 2", func(t *testing.T) {
		f := setup(t)
		f.on("GET", "/v1/sys/seal-status", 200, sealedStatus)
		r := ward(t, "", "status", "-format=json").wantCode(t, 2)
		if out := mustJSON(t, r.stdout); out["sealed"] != true || out["t"] != float64(3) {
			t.Errorf("json = %v", out)
		}
	})
	t.Run("error exits 1", func(t *testing.T) {
		f := setup(t)
		f.on("GET", "/v1/sys/seal-status", 400, `{"errors":["boom"]}`)
		r := ward(t, "", "status").wantCode(t, 1)
		if r.stderr != "Error checking seal status: boom\n" {
			t.Errorf("stderr = %q", r.stderr)
		}
	})
	t.Run("HA active node", func(t *testing.T) {
		f := setup(t)
		f.on("GET", "/v1/sys/seal-status", 200, unsealedStatus)
		f.on("GET", "/v1/sys/leader", 200, `{"ha_enabled":true,"is_self":true,"leader_cluster_address":"https://n1:8201"}`)
		kv := parseKeyValueTable(t, ward(t, "", "status").wantCode(t, 0).stdout)
		if kv["HA Enabled"] != "true" || kv["HA Mode"] != "active" || kv["HA Cluster"] != "https://n1:8201" {
			t.Errorf("table = %v", kv)
		}
	})
	t.Run("no token needed", func(t *testing.T) {
		f := setup(t)
		t.Setenv("WARD_TOKEN", "")
		f.on("GET", "/v1/sys/seal-status", 200, unsealedStatus)
		ward(t, "", "status").wantCode(t, 0)
	})
}

const initReply = `{"keys":["aa01","bb02","cc03"],"keys_base64":["qgE=","uwI=","zAM="],"root_token":"s.root"}`

func TestOperatorInit(t *testing.T) {
	t.Run("table", func(t *testing.T) {
		f := setup(t)
		f.on("PUT", "/v1/sys/init", 200, initReply)
		r := ward(t, "", "operator", "init", "-key-shares=3", "-key-threshold=2").wantCode(t, 0)
		body := f.only("PUT", "/v1/sys/init").JSON(t)
		if body["secret_shares"] != float64(3) || body["secret_threshold"] != float64(2) {
			t.Errorf("body = %v", body)
		}
		for _, want := range []string{"Unseal Key 1: qgE=\n", "Unseal Key 3: zAM=\n", "\nInitial Root Token: s.root\n",
			"initialized with 3 key shares and a key threshold of 2"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("output lacks %q:\n%s", want, r.stdout)
			}
		}
	})
	t.Run("defaults and json", func(t *testing.T) {
		f := setup(t)
		f.on("GET", "/v1/sys/seal-status", 200, `{"type":"shamir","initialized":false,"sealed":true}`)
		f.on("PUT", "/v1/sys/init", 200, initReply)
		r := ward(t, "", "operator", "init", "-format=json").wantCode(t, 0)
		body := lastRequest(t, f, "PUT", "/v1/sys/init").JSON(t)
		if body["secret_shares"] != float64(5) || body["secret_threshold"] != float64(3) {
			t.Errorf("default body = %v", body)
		}
		jsonEqual(t, mustJSON(t, r.stdout), `{"unseal_keys_b64":["qgE=","uwI=","zAM="],
		  "unseal_keys_hex":["aa01","bb02","cc03"],"unseal_shares":3,"unseal_threshold":3,"root_token":"s.root"}`)
	})
	t.Run("never retried", func(t *testing.T) {
		f := setup(t)
		t.Setenv("WARD_MAX_RETRIES", "2")
		f.on("PUT", "/v1/sys/init", 500, `{"errors":["storage hiccup"]}`)
		r := ward(t, "", "operator", "init", "-key-shares=5").wantCode(t, exitRemote)
		f.only("PUT", "/v1/sys/init")
		if r.stderr != "Error initializing: storage hiccup\n" {
			t.Errorf("stderr = %q", r.stderr)
		}
	})
	t.Run("recovery keys with an auto-unseal seal", func(t *testing.T) {
		f := setup(t)
		f.on("GET", "/v1/sys/seal-status", 200, `{"type":"pkcs11","initialized":false,"sealed":true,"recovery_seal":true}`)
		f.on("PUT", "/v1/sys/init", 200, `{"keys":[],"keys_base64":[],"recovery_keys":["aa01","bb02"],"recovery_keys_base64":["qgE=","uwI="],"root_token":"s.root"}`)
		r := ward(t, "", "operator", "init", "-recovery-threshold=2").wantCode(t, 0)
		body := lastRequest(t, f, "PUT", "/v1/sys/init").JSON(t)
		if body["recovery_shares"] != float64(5) || body["recovery_threshold"] != float64(2) || body["secret_shares"] != float64(0) {
			t.Errorf("body = %v", body)
		}
		for _, want := range []string{"Recovery Key 1: qgE=\n", "Recovery Key 2: uwI=\n", "Initial Root Token: s.root", "key threshold of 2"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("output lacks %q:\n%s", want, r.stdout)
			}
		}
		// Without flags, the server's seal status decides.
		f = setup(t)
		f.on("GET", "/v1/sys/seal-status", 200, `{"type":"pkcs11","initialized":false,"sealed":true,"recovery_seal":true}`)
		f.on("PUT", "/v1/sys/init", 200, `{"recovery_keys":["aa01"],"recovery_keys_base64":["qgE="],"root_token":"s.root"}`)
		r = ward(t, "", "operator", "init", "-format=json").wantCode(t, 0)
		if body := lastRequest(t, f, "PUT", "/v1/sys/init").JSON(t); body["recovery_shares"] != float64(5) {
			t.Errorf("body = %v", body)
		}
		if out := mustJSON(t, r.stdout); out["recovery_keys_b64"] == nil || out["root_token"] != "s.root" {
			t.Errorf("json = %v", out)
		}
	})
	t.Run("bad threshold is a usage error", func(t *testing.T) {
		f := setup(t)
		ward(t, "", "operator", "init", "-key-shares=2", "-key-threshold=3").wantCode(t, exitLocal)
		if len(f.allRequests()) != 0 {
			t.Errorf("request sent")
		}
	})
	t.Run("-status", func(t *testing.T) {
		f := setup(t)
		f.on("GET", "/v1/sys/init", 200, `{"initialized":false}`)
		r := ward(t, "", "operator", "init", "-status").wantCode(t, 2)
		if r.stdout != "Ward is not initialized\n" {
			t.Errorf("stdout = %q", r.stdout)
		}
	})
}

func TestOperatorUnseal(t *testing.T) {
	t.Run("key argument", func(t *testing.T) {
		f := setup(t)
		f.on("PUT", "/v1/sys/unseal", 200, sealedStatus)
		r := ward(t, "", "operator", "unseal", "qgE=").wantCode(t, 0)
		jsonEqual(t, f.only("PUT", "/v1/sys/unseal").JSON(t), `{"key":"qgE="}`)
		if parseKeyValueTable(t, r.stdout)["Unseal Progress"] != "1/3" {
			t.Errorf("output:\n%s", r.stdout)
		}
	})
	t.Run("key from stdin is not echoed to stdout", func(t *testing.T) {
		f := setup(t)
		f.on("PUT", "/v1/sys/unseal", 200, unsealedStatus)
		f.on("GET", "/v1/sys/leader", 200, `{"ha_enabled":false}`)
		r := ward(t, "uwI=\n", "operator", "unseal").wantCode(t, 0)
		reqs := f.requests() // the unseal, then sys/leader for the HA rows
		if len(reqs) != 2 || reqs[0].Method != "PUT" || reqs[0].Path != "/v1/sys/unseal" {
			t.Fatalf("requests = %+v", reqs)
		}
		jsonEqual(t, reqs[0].JSON(t), `{"key":"uwI="}`)
		if !strings.Contains(r.stderr, "Unseal Key (will be hidden):") {
			t.Errorf("no prompt on stderr: %q", r.stderr)
		}
		if strings.Contains(r.stdout+r.stderr, "uwI=") {
			t.Errorf("the key was printed")
		}
	})
	t.Run("empty stdin", func(t *testing.T) {
		f := setup(t)
		ward(t, "", "operator", "unseal").wantCode(t, exitLocal)
		if len(f.allRequests()) != 0 {
			t.Errorf("request sent")
		}
	})
	t.Run("migrate", func(t *testing.T) {
		f := setup(t)
		f.on("PUT", "/v1/sys/unseal", 200, sealedStatus)
		ward(t, "", "operator", "unseal", "-migrate", "qgE=").wantCode(t, 0)
		jsonEqual(t, f.only("PUT", "/v1/sys/unseal").JSON(t), `{"key":"qgE=","reset":false,"migrate":true}`)
	})
	t.Run("reset", func(t *testing.T) {
		f := setup(t)
		f.on("PUT", "/v1/sys/unseal", 200, sealedStatus)
		ward(t, "", "operator", "unseal", "-reset", "-format=json").wantCode(t, 0)
		jsonEqual(t, f.only("PUT", "/v1/sys/unseal").JSON(t), `{"reset":true}`)
	})
	t.Run("bad key", func(t *testing.T) {
		f := setup(t)
		f.on("PUT", "/v1/sys/unseal", 400, `{"errors":["invalid key"]}`)
		r := ward(t, "", "operator", "unseal", "nope").wantCode(t, exitRemote)
		if r.stderr != "Error unsealing: invalid key\n" {
			t.Errorf("stderr = %q", r.stderr)
		}
	})
}

func TestOperatorSeal(t *testing.T) {
	f := setup(t)
	f.on("PUT", "/v1/sys/seal", 204, "")
	r := ward(t, "", "operator", "seal").wantCode(t, 0)
	f.only("PUT", "/v1/sys/seal")
	if r.stdout != "Success! Ward is sealed.\n" {
		t.Errorf("stdout = %q", r.stdout)
	}
}

// lastRequest returns the last request with the method and path.
func lastRequest(t *testing.T, f *fakeServer, method, path string) request {
	t.Helper()
	reqs := f.requests()
	for i := len(reqs) - 1; i >= 0; i-- {
		if reqs[i].Method == method && reqs[i].Path == path {
			return reqs[i]
		}
	}
	t.Fatalf("no %s %s among %+v", method, path, reqs)
	return request{}
}
