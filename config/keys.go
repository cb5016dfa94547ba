package config

// blockSchemas maps each block, by its path from the top of the file, to
// the schema of its body. Every block named in a schema needs an entry:
// TestBlockSchemas fails otherwise, so that Keys, and with it the
// reference in docs/configuration.md, cannot miss the keys of a new
// block.
var blockSchemas = map[string]schema{
	"":                  fileSchema,
	"control_tls":       tlsSchema,
	"https":             httpsSchema,
	"https.certificate": certificateSchema,
	"https.acme":        acmeSchema,
	"app":               appSchema,
	"app.health":        healthSchema,
	"app.stdout_log":    stdoutLogSchema,
	"app.rollout":       rolloutSchema,
	"app.limits":        limitsSchema,
}

// Keys returns every key the config file knows, as a path from the top of
// the file: "listen", "control_tls", "control_tls.cert_file", "app",
// "app.command", "app.health.path". A block is listed before its keys; the
// order is that of the schemas. An apply file (ParseApps) takes the same
// keys.
func Keys() []string {
	var out []string
	var walk func(prefix string)
	walk = func(prefix string) {
		sc, ok := blockSchemas[prefix]
		if !ok {
			return // TestBlockSchemas reports it
		}
		for _, a := range sc.attrs {
			out = append(out, join(prefix, a))
		}
		for _, b := range sc.blocks {
			out = append(out, join(prefix, b))
			walk(join(prefix, b))
		}
	}
	walk("")
	return out
}

// IsBlock reports whether a key of Keys is a block.
func IsBlock(key string) bool {
	_, ok := blockSchemas[key]
	return ok && key != ""
}

// schemaBlocks returns the path of every block that a schema names, and
// whether blockSchemas has each.
func schemaBlocks() map[string]bool {
	out := map[string]bool{}
	for prefix, sc := range blockSchemas {
		for _, b := range sc.blocks {
			_, ok := blockSchemas[join(prefix, b)]
			out[join(prefix, b)] = ok
		}
	}
	return out
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}
