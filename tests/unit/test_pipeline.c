/*
 * test_pipeline.c - the CLI and the API take the same removal options: each
 * row of a table goes through `petcut remove`'s argument parser
 * (remove_parse_args) and through the JSON parser of POST
 * /v1/remove-background (http_remove_parse); both must accept it and make
 * the same request (the same canonical text, which names every option), or
 * both refuse it for the same reason (the API's words, the option named as
 * each input names it, within the CLI's message). A background image is
 * named differently by nature (a file for the CLI, an uploaded image's id
 * for the API), so only colours and blur are in the table.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/remove.h"
#include "http/parse.h"
#include "pipeline/pipeline.h"

#include "check.h"

#define IMAGE_ID "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

struct row {
	const char *cli;  /* options, split at spaces */
	const char *json; /* the same as JSON fields */
	int ok;		  /* both accept it */
};

/* Every row also asks for --size full / "size":"full" first (the inputs'
 * defaults differ: the CLI makes full size, the API previews), except where
 * it names a size itself. */
static const struct row rows[] = {
	{"", "", 1},
	{"--size preview", "\"size\":\"preview\"", 1},
	{"--size huge", "\"size\":\"huge\"", 0},
	{"--format webp", "\"format\":\"webp\"", 1},
	{"--format avif --quality 55", "\"format\":\"avif\",\"quality\":55", 1},
	{"--format gif", "\"format\":\"gif\"", 0},
	{"--format jpg", "\"format\":\"jpg\"", 0},
	{"--format jpg --bg white", "\"format\":\"jpg\",\"bg\":\"white\"", 1},
	{"--format jpg --bg #ffffff80", "\"format\":\"jpg\",\"bg\":\"#ffffff80\"", 0},
	{"--format jpg --mask", "\"format\":\"jpg\",\"mask\":true", 1},
	{"--format jpg --effect popart", "\"format\":\"jpg\",\"effect\":\"popart\"", 1},
	{"--bg white", "\"bg\":\"white\"", 1},
	{"--bg #1a1a40", "\"bg\":\"#1a1a40\"", 1},
	{"--bg blur", "\"bg\":\"blur\"", 1},
	{"--effect none", "\"effect\":\"none\"", 1},
	{"--effect shadow", "\"effect\":\"shadow\"", 1},
	{"--effect popart", "\"effect\":\"popart\"", 1},
	{"--effect popart --bg white", "\"effect\":\"popart\",\"bg\":\"white\"", 0},
	{"--effect glow", "\"effect\":\"glow\"", 0},
	{"--effect sticker --outline 5", "\"effect\":\"sticker\",\"outline\":5", 1},
	{"--effect sticker --outline 1000", "\"effect\":\"sticker\",\"outline\":1000", 1},
	{"--effect sticker --outline 1001", "\"effect\":\"sticker\",\"outline\":1001", 0},
	{"--effect sticker --outline 0", "\"effect\":\"sticker\",\"outline\":0", 0},
	{"--effect sticker --outline -3", "\"effect\":\"sticker\",\"outline\":-3", 0},
	{"--outline 5", "\"outline\":5", 0},
	{"--refine guided", "\"refine\":\"guided\"", 1},
	{"--refine matting", "\"refine\":\"matting\"", 1},
	{"--refine mating", "\"refine\":\"mating\"", 0},
	{"--refine sharp", "\"refine\":\"sharp\"", 0},
	{"--crop", "\"crop\":true", 1},
	{"--crop --margin 10", "\"crop\":true,\"margin\":\"10\"", 1},
	{"--crop --margin 12.5%", "\"crop\":true,\"margin\":\"12.5%\"", 1},
	{"--crop --margin 10000", "\"crop\":true,\"margin\":\"10000\"", 1},
	{"--crop --margin 10001", "\"crop\":true,\"margin\":\"10001\"", 0},
	{"--crop --margin -1", "\"crop\":true,\"margin\":\"-1\"", 0},
	{"--crop --margin nan", "\"crop\":true,\"margin\":\"nan\"", 0},
	{"--crop --margin 10px", "\"crop\":true,\"margin\":\"10px\"", 0},
	{"--margin 10", "\"margin\":\"10\"", 0},
	{"--fit 800x600", "\"fit\":\"800x600\"", 1},
	{"--fit 0x600", "\"fit\":\"0x600\"", 1},
	{"--fit 0x0", "\"fit\":\"0x0\"", 0},
	{"--fit 800", "\"fit\":\"800\"", 0},
	{"--fit 20001x5", "\"fit\":\"20001x5\"", 0},
	{"--fit 99999999999999999999x5", "\"fit\":\"99999999999999999999x5\"", 0},
	{"--edges clean", "\"edges\":\"clean\"", 1},
	{"--edges photo --bg white", "\"edges\":\"photo\",\"bg\":\"white\"", 1},
	{"--edges auto", "\"edges\":\"auto\"", 1},
	{"--edges soft", "\"edges\":\"soft\"", 0},
	{"--edges clean --mask", "\"edges\":\"clean\",\"mask\":true", 0},
	{"--fit 0.25MP", "\"fit\":\"0.25MP\"", 1},
	{"--fit 12mp", "\"fit\":\"12mp\"", 1},
	{"--fit 1000MP", "\"fit\":\"1000MP\"", 1},
	{"--fit 1001MP", "\"fit\":\"1001MP\"", 0},
	{"--fit 0MP", "\"fit\":\"0MP\"", 0},
	{"--fit 0x10MP", "\"fit\":\"0x10MP\"", 0},
	{"--fit MP", "\"fit\":\"MP\"", 0},
	{"--fit 0.25MP --mask", "\"fit\":\"0.25MP\",\"mask\":true", 0},
	{"--quality 1", "\"quality\":1", 1},
	{"--quality 100", "\"quality\":100", 1},
	{"--quality 0", "\"quality\":0", 0},
	{"--quality 101", "\"quality\":101", 0},
	{"--lossy --format webp", "\"lossy\":true,\"format\":\"webp\"", 1},
	{"--mask", "\"mask\":true", 1},
	{"--mask --crop", "\"mask\":true,\"crop\":true", 0},
	{"--mask --bg white", "\"mask\":true,\"bg\":\"white\"", 0},
	{"--color srgb", "\"color\":\"srgb\"", 1},
	{"--color p3", "\"color\":\"p3\"", 0},
	{"--canvas 2400x3000", "\"canvas\":\"2400x3000\"", 1},
	{"--canvas 8x10in --dpi 300", "\"canvas\":\"8x10in\",\"dpi\":300", 1},
	{"--dpi 300 --canvas 8x10in", "\"dpi\":300,\"canvas\":\"8x10in\"", 1},
	{"--canvas 20x25cm", "\"canvas\":\"20x25cm\"", 1},
	{"--canvas 8.5inx11in", "\"canvas\":\"8.5inx11in\"", 1},
	{"--canvas photo --scale 80%", "\"canvas\":\"photo\",\"scale\":\"80%\"", 1},
	{"--canvas 800x600 --scale 80% --position 50%,100% --padding 5%,20 --snap none",
	 "\"canvas\":\"800x600\",\"scale\":\"80%\",\"position\":\"50%,100%\",\"padding\":\"5%,20\",\"snap\":\"none\"", 1},
	{"--canvas 800x600 --position bottom --padding 1,2,3,4", "\"canvas\":\"800x600\",\"position\":\"bottom\",\"padding\":\"1,2,3,4\"", 1},
	{"--canvas 800x600 --padding 1,2,3", "\"canvas\":\"800x600\",\"padding\":\"1,2,3\"", 0},
	{"--canvas 800x600 --padding 1,2,3,4,", "\"canvas\":\"800x600\",\"padding\":\"1,2,3,4,\"", 0},
	{"--canvas 800x600 --padding 1,2,3,4,5", "\"canvas\":\"800x600\",\"padding\":\"1,2,3,4,5\"", 0},
	{"--canvas 800x600 --padding 10%", "\"canvas\":\"800x600\",\"padding\":\"10%\"", 1},
	{"--canvas 800x600 --scale 0%", "\"canvas\":\"800x600\",\"scale\":\"0%\"", 0},
	{"--canvas 800x600 --scale 101%", "\"canvas\":\"800x600\",\"scale\":\"101%\"", 0},
	{"--canvas 800x600 --scale 0.8", "\"canvas\":\"800x600\",\"scale\":\"0.8\"", 0},
	{"--canvas 800x600 --position 120%", "\"canvas\":\"800x600\",\"position\":\"120%\"", 0},
	{"--canvas 800x600 --snap middle", "\"canvas\":\"800x600\",\"snap\":\"middle\"", 0},
	{"--canvas 20001x10", "\"canvas\":\"20001x10\"", 0},
	{"--canvas 15000x15000", "\"canvas\":\"15000x15000\"", 0},
	{"--canvas 100x100in", "\"canvas\":\"100x100in\"", 0},
	{"--canvas 8inx3000", "\"canvas\":\"8inx3000\"", 0},
	{"--canvas 800.5x600", "\"canvas\":\"800.5x600\"", 0},
	{"--canvas 0x600", "\"canvas\":\"0x600\"", 0},
	{"--canvas 800x600 --crop", "\"canvas\":\"800x600\",\"crop\":true", 0},
	{"--canvas 800x600 --fit 100x100", "\"canvas\":\"800x600\",\"fit\":\"100x100\"", 1},
	{"--canvas 800x600 --effect popart", "\"canvas\":\"800x600\",\"effect\":\"popart\"", 0},
	{"--scale 80%", "\"scale\":\"80%\"", 0},
	{"--dpi 0", "\"dpi\":0", 0},
	{"--dpi 4801", "\"dpi\":4801", 0},
	{"--dpi 300", "\"dpi\":300", 1},
	{"--roi 10%,10%,90%,80%", "\"roi\":\"10%,10%,90%,80%\"", 1},
	{"--roi 0px,0px,300px,200px --mask", "\"roi\":\"0px,0px,300px,200px\",\"mask\":true", 1},
	{"--roi 0%,0%,100%,100%", "\"roi\":\"0%,0%,100%,100%\"", 1},
	{"--roi 10,10,5,20", "\"roi\":\"10,10,5,20\"", 0},
	{"--roi 10%,10%,120%,80%", "\"roi\":\"10%,10%,120%,80%\"", 0},
	{"--roi 10,10,20", "\"roi\":\"10,10,20\"", 0},
	{"--shadow soft", "\"shadow\":\"soft\"", 1},
	{"--shadow hard --shadow-angle -30 --shadow-opacity 40 --shadow-blur 1.5%",
	 "\"shadow\":\"hard\",\"shadow_angle\":-30,\"shadow_opacity\":40,\"shadow_blur\":\"1.5%\"", 1},
	{"--shadow floating --shadow-offset 8% --bg white", "\"shadow\":\"floating\",\"shadow_offset\":\"8%\",\"bg\":\"white\"", 1},
	{"--effect shadow --shadow-offset 12 --shadow-angle 90", "\"effect\":\"shadow\",\"shadow_offset\":12,\"shadow_angle\":90", 0},
	{"--effect shadow --shadow-offset 12 --shadow-angle 80", "\"effect\":\"shadow\",\"shadow_offset\":12,\"shadow_angle\":80", 1},
	{"--shadow soft --shadow-angle 10", "\"shadow\":\"soft\",\"shadow_angle\":10", 0},
	{"--shadow hard --shadow-offset 10", "\"shadow\":\"hard\",\"shadow_offset\":10", 0},
	{"--shadow soft --effect sticker", "\"shadow\":\"soft\",\"effect\":\"sticker\"", 0},
	{"--shadow-opacity 50", "\"shadow_opacity\":50", 0},
	{"--shadow drop --shadow-opacity 101", "\"shadow\":\"drop\",\"shadow_opacity\":101", 0},
	{"--shadow spooky", "\"shadow\":\"spooky\"", 0},
	{"--overlap 10%", "\"overlap\":\"10%\"", 0},
	{"--heights 100%,50%", "\"heights\":\"100%,50%\"", 0},
};

/* A group portrait: `petcut group a.jpg b.jpg c.jpg -o out.png` against
 * {"images": [3 ids]}. */
static const struct row group_rows[] = {
	{"", "", 1},
	{"--overlap 10%", "\"overlap\":\"10%\"", 1},
	{"--overlap -20%", "\"overlap\":\"-20%\"", 1},
	{"--overlap 95%", "\"overlap\":\"95%\"", 0},
	{"--overlap 10", "\"overlap\":\"10\"", 0},
	{"--heights 100%,80%,60%", "\"heights\":\"100%,80%,60%\"", 1},
	{"--heights equal", "\"heights\":\"equal\"", 1},
	{"--heights 100%,80%,60%,50%", "\"heights\":\"100%,80%,60%,50%\"", 0},
	{"--heights 0%", "\"heights\":\"0%\"", 0},
	{"--canvas 8x10in --bg white --shadow soft", "\"canvas\":\"8x10in\",\"bg\":\"white\",\"shadow\":\"soft\"", 1},
	{"--effect sticker --fit 800x600", "\"effect\":\"sticker\",\"fit\":\"800x600\"", 1},
	{"--mask", "\"mask\":true", 0},
	{"--crop", "\"crop\":true", 0},
	{"--bg blur", "\"bg\":\"blur\"", 0},
	{"--effect popart", "\"effect\":\"popart\"", 0},
	{"--roi 0,0,50%,50%", "\"roi\":\"0,0,50%,50%\"", 0},
};

/* Whether the rows are a group's. */
static int group_mode;

/* The CLI's verdict on options: 0 with its canonical text, or 2 with its
 * message (stderr, captured). */
static int via_cli(const char *opts, char *canon, size_t cl, char *msg, size_t ml)
{
	char buf[512], *argv[40] = {"remove", "in.jpg", "out.png"};
	char *group[] = {"group", "a.jpg", "b.jpg", "c.jpg", "-o", "out.png"};
	int argc = 3, rc, saved = dup(STDERR_FILENO);

	if (group_mode)
		for (argc = 0; argc < 6; argc++)
			argv[argc] = group[argc];
	struct remove_opts o;
	FILE *err = tmpfile();

	snprintf(buf, sizeof buf, "%s", opts);
	for (char *t = strtok(buf, " "); t && argc < 39; t = strtok(NULL, " "))
		argv[argc++] = t;
	if (!strstr(opts, "--size")) {
		argv[argc++] = "--size";
		argv[argc++] = "full";
	}
	fflush(stderr);
	dup2(fileno(err), STDERR_FILENO);
	rc = remove_parse_args(argc, argv, &o);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	rewind(err);
	size_t n = fread(msg, 1, ml - 1, err);
	msg[n] = '\0';
	msg[strcspn(msg, "\n")] = '\0';
	fclose(err);
	if (!rc)
		pipe_canonical(&o.req, "", canon, cl);
	return rc;
}

/* The API's verdict: 0 with its canonical text, or 400 with why. */
static int via_json(const char *fields, char *canon, size_t cl, char *why, size_t wl)
{
	char text[1024];
	struct remove_params p;
	json_t *body;
	int rc;

	if (group_mode)
		snprintf(text, sizeof text, "{\"images\":[\"%s\",\"%s\",\"%s\"]%s%s%s}", IMAGE_ID, IMAGE_ID, IMAGE_ID,
			 strstr(fields, "\"size\"") ? "" : ",\"size\":\"full\"", *fields ? "," : "", fields);
	else
		snprintf(text, sizeof text, "{\"image_id\":\"%s\"%s%s%s}", IMAGE_ID,
			 strstr(fields, "\"size\"") ? "" : ",\"size\":\"full\"", *fields ? "," : "", fields);
	if (!(body = json_loads(text, 0, NULL)))
		return -1;
	rc = http_remove_parse(body, &p, why, wl);
	if (!rc)
		snprintf(canon, cl, "%s", p.canonical);
	json_decref(body);
	return rc;
}

static void run_rows(const struct row *table, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		const struct row *r = &table[i];
		char c1[800] = "", c2[800] = "", msg[1024], why[512], named[600];
		int cli = via_cli(r->cli, c1, sizeof c1, msg, sizeof msg);
		int api = via_json(r->json, c2, sizeof c2, why, sizeof why);

		if (r->ok) {
			CHECK(!cli && !api && !strcmp(c1, c2), "%s'%s' and {%s} are accepted alike (%s | %s)", group_mode ? "group " : "", r->cli,
			      r->json, cli ? msg : c1, api ? why : c2);
			continue;
		}
		/* the API's words, its field named as the CLI's flag */
		const char *sp = strchr(why, ' ');
		char head[64];
		snprintf(head, sizeof head, "%.*s", sp ? (int)(sp - why) : 0, why);
		int opt = pipe_opt_by_field(head);
		if (opt >= 0 && sp && !strncmp(sp, " is ", 4))
			snprintf(named, sizeof named, "%s%s", pipe_opt_flag((enum pipe_opt)opt), sp);
		else
			snprintf(named, sizeof named, "%s", why);
		CHECK(cli == 2 && api == 400 && strstr(msg, named), "%s'%s' and {%s} are refused alike (%s| %s)",
		      group_mode ? "group " : "", r->cli, r->json, cli == 2 ? msg : "accepted ", api ? why : "accepted");
	}
}

int main(void)
{
	run_rows(rows, sizeof rows / sizeof rows[0]);
	group_mode = 1;
	run_rows(group_rows, sizeof group_rows / sizeof group_rows[0]);
	return failures ? 1 : 0;
}
