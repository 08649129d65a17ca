package billing

// SMTPConfig is where mail goes.
type SMTPConfig struct {
	Addr string
}

// Validate checks the SMTP settings.
func (c *SMTPConfig) Validate() error { return nil }
