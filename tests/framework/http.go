package framework

import (
	"io"
	"net/http"
	"testing"
)

// ResponseBody returns the status code and body of an HTTP client call's
// result, failing t if the call or the read failed.
func ResponseBody(t testing.TB, resp *http.Response, err error) (int, string) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}
