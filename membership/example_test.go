package membership_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/meshnode/meshnode/membership"
)

func ExampleParseNodeID() {
	id, err := membership.ParseNodeID("worker-1@localhost:4370")
	if err != nil {
		panic(err)
	}
	fmt.Println(id.Name(), id.Host(), id.Port(), id.Address())

	_, err = membership.ParseNodeID("1app@host:4369")
	fmt.Println(err)
	var idErr *membership.IDError
	fmt.Println(errors.As(err, &idErr), idErr.Part)
	// Output:
	// worker-1 localhost 4370 localhost:4370
	// invalid node id "1app@host:4369": name must start with a letter
	// true name
}

func ExampleConfig_Validate() {
	cfg := membership.DefaultConfig()
	cfg.HeartbeatInterval = 50 * time.Millisecond
	err := cfg.Validate() // Name is missing too: every problem is reported at once
	var cfgErr *membership.ConfigError
	if errors.As(err, &cfgErr) {
		for _, p := range cfgErr.Problems {
			fmt.Println(p.Field)
		}
	}
	fmt.Println(errors.Is(err, membership.ErrInvalidConfig))
	// Output:
	// Name
	// HeartbeatInterval
	// true
}
