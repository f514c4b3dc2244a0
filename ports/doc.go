// Package ports declares the boundary of the hexagon. Driving ports
// (driving.go, the ...Service interfaces) are what the outside asks of the core;
// application implements them. Driven ports (driven.go, role nouns) are what
// the core needs from the outside; adapters implement them. Only interfaces
// and plain data live here, and ViewOf (view.go), the one place a user's
// public view is made.
package ports
