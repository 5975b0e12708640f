package kernel

import (
	"fmt"
	"testing"
	"time"
)

// TestJoinChallengesBounded: a flood of challenges never holds more than
// maxChallenges and never blocks a new one (the oldest goes); expired ones
// go first; each challenge is taken once.
func TestJoinChallengesBounded(t *testing.T) {
	var j joinChallenges
	now := time.Unix(1000, 0)
	j.add(now, "stale", &pendingJoin{serverID: "a", expires: now.Add(time.Second)})
	later := now.Add(time.Minute)
	for i := range maxChallenges + 10 {
		j.add(later, fmt.Sprint(i), &pendingJoin{serverID: "flood", expires: later.Add(challengeTTL)})
	}
	j.add(later, "mine", &pendingJoin{serverID: "node-b", expires: later.Add(challengeTTL)})
	if n := len(j.pending); n > maxChallenges || len(j.order) != n {
		t.Fatalf("%d challenges held (order %d), bound %d", n, len(j.order), maxChallenges)
	}
	if j.take("stale") != nil || j.take("0") != nil {
		t.Error("an expired or the oldest challenge survived the flood")
	}
	if p := j.take("mine"); p == nil || p.serverID != "node-b" {
		t.Fatal("the newest challenge was dropped")
	}
	if j.take("mine") != nil {
		t.Error("a challenge was taken twice")
	}
}
