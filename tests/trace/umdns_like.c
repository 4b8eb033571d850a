/* Makes the calls umdns makes (and only those after main): socket, setsockopt, bind,
   getsockname, epoll_create1, epoll_ctl, fcntl, uname, sendto, recvfrom, close.
   Exits 42 when every call worked; with the argument "outside" it also calls getcwd,
   which umdns's policy does not allow. */
#include <netinet/in.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <fcntl.h>
#include <unistd.h>
int main(int argc, char **argv)
{
	struct sockaddr_in addr;
	socklen_t len = sizeof(addr);
	struct epoll_event ev = { .events = EPOLLIN };
	struct utsname uts;
	int one = 1;
	char byte;
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	if (s < 0 || setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		return 1;
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(s, (struct sockaddr *)&addr, sizeof(addr)) < 0 || getsockname(s, (struct sockaddr *)&addr, &len) < 0)
		return 2;
	int ep = epoll_create1(0);
	ev.data.fd = s;
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) < 0)
		return 3;
	if (fcntl(s, F_GETFL) < 0 || uname(&uts) < 0)
		return 4;
	if (argc > 1 && strcmp(argv[1], "outside") == 0) {
		char buf[64];
		if (!getcwd(buf, sizeof(buf)))   /* not in umdns's policy */
			return 5;
	}
	if (sendto(s, "x", 1, 0, (struct sockaddr *)&addr, len) != 1 || recvfrom(s, &byte, 1, 0, NULL, NULL) != 1)
		return 6;
	close(ep);
	close(s);
	return 42;
}
