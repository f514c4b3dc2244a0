// Command userservice serves the user-management API and runs its
// administration commands. Everything lives in bootstrap; this file only
// turns signals into a context and the result into an exit status.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/userservice/userservice/bootstrap"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := bootstrap.Main(ctx, os.Args[1:], bootstrap.OS())
	stop()
	os.Exit(code)
}
