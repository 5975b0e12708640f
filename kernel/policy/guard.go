package policy

import (
	"context"
	"fmt"
	"time"
)

// Guard is a condition that stands alone, outside any policy: an auth
// mount's login_condition, checked before an unauthenticated login reaches
// the auth method. It sees the same variables as a rule's condition; the
// token is empty.
type Guard struct{ c *condition }

// CompileGuard compiles and checks a condition as Parse does for a rule's
// (bool result, cost estimate within DefaultMaxConditionCost).
func CompileGuard(expr string) (*Guard, error) {
	c, err := compileCondition(expr, DefaultMaxConditionCost)
	if err != nil {
		return nil, fmt.Errorf("invalid condition: %w", err)
	}
	return &Guard{c: c}, nil
}

// Allows evaluates the guard. An evaluation error denies; the error,
// reduced to a fixed class that quotes no request data, says why.
func (g *Guard) Allows(ctx context.Context, in *Input) (bool, error) {
	now := in.Now
	if now.IsZero() {
		now = time.Now()
	}
	ok, err := g.c.eval(ctx, newActivation(in, now.UTC()))
	if err != nil {
		return false, fmt.Errorf("condition failed: %s", evalErrorClass(err))
	}
	return ok, nil
}
