/*
 * test_fetch.c - the addresses image_url fetching never connects to
 * (src/http/fetch.c): every private, loopback, link-local, CGNAT, multicast
 * or reserved IPv4 range and its edges, and IPv6 forms including those that
 * hide an IPv4 address; public addresses pass.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "http/http_int.h"

#include "check.h"

static int blocked(const char *addr)
{
	struct sockaddr_in a4 = {.sin_family = AF_INET};
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6};

	if (inet_pton(AF_INET, addr, &a4.sin_addr) == 1)
		return http_addr_blocked((struct sockaddr *)&a4);
	if (inet_pton(AF_INET6, addr, &a6.sin6_addr) == 1)
		return http_addr_blocked((struct sockaddr *)&a6);
	return -1;
}

int main(void)
{
	static const char *const refused[] = {
		"127.0.0.1", "127.255.255.254", "0.0.0.0", "10.0.0.1", "10.255.255.255", "172.16.0.1",
		"172.31.255.255", "192.168.1.1", "169.254.169.254", "100.64.0.1", "100.127.255.255",
		"224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255", "192.0.0.8", "198.18.0.1",
		"::", "::1", "::ffff:127.0.0.1", "::ffff:8.8.8.8", "::127.0.0.1", "64:ff9b::7f00:1", "64:ff9b::808:808",
		"2002:7f00:1::", "2001:0:4136:e378::1", "fc00::1", "fd12:3456::1", "fe80::1", "fec0::1", "ff02::1",
		"2001:db8::1",
	};
	static const char *const allowed[] = {
		"8.8.8.8", "1.1.1.1", "93.184.216.34", "172.15.255.255", "172.32.0.1", "100.63.255.255", "100.128.0.1",
		"169.253.0.1", "192.167.1.1", "11.0.0.1", "223.255.255.254", "2606:4700:4700::1111", "2a00:1450:4007::200e",
	};
	int n = 0;

	for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
		int b = blocked(refused[i]);
		n += b == 1;
		if (b != 1)
			CHECK(0, "%s is refused", refused[i]);
	}
	CHECK(n == (int)(sizeof refused / sizeof *refused), "%d of %zu private, local or IPv4-hiding addresses refused", n,
	      sizeof refused / sizeof *refused);
	n = 0;
	for (size_t i = 0; i < sizeof allowed / sizeof *allowed; i++) {
		int b = blocked(allowed[i]);
		n += b == 0;
		if (b != 0)
			CHECK(0, "%s is allowed", allowed[i]);
	}
	CHECK(n == (int)(sizeof allowed / sizeof *allowed), "%d of %zu public addresses (edges of the ranges) allowed", n,
	      sizeof allowed / sizeof *allowed);
	struct sockaddr other = {.sa_family = AF_UNIX};
	CHECK(http_addr_blocked(&other) == 1, "other address families are refused");
	printf("%s\n", failures ? "FAILED" : "all passed");
	return failures ? 1 : 0;
}
