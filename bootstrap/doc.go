// Package bootstrap is the composition root: it reads the configuration,
// opens storage, wires the adapters into the application's ports in one
// readable place, and runs the commands of the binary (serve, migrate,
// superadmin, healthcheck) with their exit codes and graceful shutdown.
package bootstrap
