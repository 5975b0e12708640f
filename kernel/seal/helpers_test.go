package seal_test

import (
	"fmt"

	"github.com/openbao/openbao/sdk/v2/helper/shamir"
)

func combineForTest(shares [][]byte) ([]byte, error) {
	if len(shares) == 1 {
		return shares[0], nil
	}
	return shamir.Combine(shares)
}

func fmtString(v any) string { return fmt.Sprintf("%v %+v %#v %s", v, v, v, v) }
