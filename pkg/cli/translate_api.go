package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/mapping"
	translatepkg "github.com/falco-am-bridge/falco-am-bridge/pkg/translate"
)

// maxAPIRequest bounds what translate --api reads: the server sends at
// most its own limit.
const maxAPIRequest = 4 << 20

// translateAPI answers one translate request read from standard input,
// as POST /api/v1/translate answers it. It lowers its own resource
// limits first: the request's mapping is not trusted.
func translateAPI(m *mapping.Mapping, received time.Time, stdio IO) error {
	limitResources()
	body, err := io.ReadAll(io.LimitReader(stdio.Stdin, maxAPIRequest+1))
	if err != nil {
		return fmt.Errorf("reading standard input: %w", err)
	}
	if len(body) > maxAPIRequest {
		return fmt.Errorf("the request is larger than %d bytes", maxAPIRequest)
	}
	var req translatepkg.Request
	if err := json.Unmarshal(body, &req); err != nil {
		return fmt.Errorf("the request is not JSON: %w", err)
	}
	ans, err := translatepkg.API(req, m, received)
	if err != nil {
		return err
	}
	return json.NewEncoder(stdio.Stdout).Encode(ans)
}
