/* layer_main.c - linked with every object of one layer and of the layers
 * below it (meson.build, "layer-LAYER"): the link fails when any of them
 * calls a function of a layer above.  Running it does nothing. */
int main(void)
{
	return 0;
}
